"""The report: its typed document and sections, parity, accuracy, verdict, comparison and views."""
