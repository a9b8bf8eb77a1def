"""What is done with a search's results: the mini winner checked on the full data
(`validation`), promoted to a full training (`promotion`), its inference thresholds tuned
(`thresholds`), exported and measured for a device (`deployment`), and the study shown
(`reporting`, `dashboard`)."""
