"""The services the command line calls, side by side: the fit run (``fit.py``), scoring
(``score.py``), the benchmark runner (``bench.py``), the study's reproduction
(``reproduce.py``) and ONNX export (``export.py``). Each works through the detector; the HTML
report (``report/``) reads what they write."""
