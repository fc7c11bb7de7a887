"""How the gateway is served over HTTP: an event-driven front that reads whole requests, then the app on threads.

``front`` reads and answers HTTP/1.1 on an asyncio loop with deadlines and connection caps;
``wsgi`` turns a complete request into a WSGI call and back; ``refusals`` writes the
``application/problem+json`` answers for requests refused before the app sees them; ``worker`` is
the gunicorn worker class that runs the front in every server process.
"""
