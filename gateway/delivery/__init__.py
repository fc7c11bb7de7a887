"""Push delivery: the route queue, delivery workers, back-off, circuit breakers and wake-ups.

Pull (inbox) routes never enter this package's queue: the recipient fetches them.  Every other
route is a row that workers claim under a lease, deliver through the recipient's adapter and
record, with each attempt in the audit log in the same transaction.
"""
