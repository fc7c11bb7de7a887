"""A witness for transparency logs (C2SP tlog-witness), and the cosignatures it makes (tlog-cosignature).

A witness keeps, for each log it watches, the newest checkpoint it cosigned; it cosigns a new one only
when a consistency proof shows it extends that one, so a log that shows two histories, or rolls one
back, is caught by anyone who requires the witness's cosignature.  It has its own key and its own
small state, and never sees the gateway's database.
"""
