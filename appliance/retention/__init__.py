"""Retention: disk budgets per data class, oldest-first eviction that never touches held evidence, legal holds.

* ``holds``    legal holds an admin sets and releases (table ``legal_holds``, audited)
* ``protect``  why a crossing's or an evidence file's bytes must stay (legal hold, undecided, undelivered, open)
* ``evict``    usage per class and one eviction pass over the evidence folder (crossing and X-ray images)
* ``faces``    the same for the sealed face crops in the face store
* ``service``  the periodic thread of the running appliance: alarms in the log and ``/status``
* ``cli``      ``appliance retention hold|release|status|run``

docs/RETENTION.md explains the rules, where the SQLite file lives against the evidence disk, and the alarms.
"""
