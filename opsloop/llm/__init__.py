"""The model path: settings to a chat client, retries, a bounded tool loop, usage accounting.

Nothing here is needed offline: with no endpoint configured, specialists use the offline
reasoner and no client is built.
"""
