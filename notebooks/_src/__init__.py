"""Per-notebook sources of the tdt notebooks (one module ``NN_name.py`` per ``NN_name.ipynb``).

Each source module defines ``cells()``, the notebook's cells built with the helpers of
``_common`` (``md``, ``code``, ``parameters``, ``SETUP``). ``notebooks/_build.py`` loads this
package from its file (``notebooks/`` is not an importable package) and writes every notebook.
"""
