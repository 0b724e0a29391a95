"""The clock that starts scheduled agents: cron times from policies/schedule.yaml (`cron`), a
durable ledger of runs (`ledger`), and the scheduler that claims, runs, catches up and
recovers them (`driver`)."""
