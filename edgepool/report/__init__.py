"""Reports: tables, plots, exports of results."""
