"""The web console: server-rendered pages over the API's runtime, for the people in the loop.

`create_console_app` (app.py) wraps the API's app with the console's routers: sign-in
(signin.py: sessions from API tokens or the local user file), pages (pages.py) and the
actions people take (actions.py), which go through the same code the API and CLI use.
"""
