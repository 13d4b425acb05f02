"""The SQL kernel: connections, transactions, dialects, parameter style, migrations.

Only this package and the modules' ``sql.py`` files know SQL or a database driver.
"""
