"""Settlement exports: pure functions from plain statement data to the bytes finance staff need.

- ``documents``: the input shapes (``StatementDoc``, ``StatementLineDoc``, ``BankAccount``, ``Remitter``,
  ``Transfer``);
- ``csv_export``: statement and month CSVs, written row by row as chunks (streamable), and the month
  summary CSV, for Excel;
- ``pdf``: the A4 精算書 in Japanese;
- ``zengin``: the 全銀協 総合振込 bulk transfer file;
- ``calendar``: bank business days and the payment date; ``era``: Japanese era dates.

Nothing here touches a database or the clock; modules are imported on their own (the PDF one loads
reportlab) so this package imports nothing itself.
"""
