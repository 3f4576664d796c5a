"""The checks of each lab's exercise: one module per lab, ``labNN_<name>.py``, declaring
``ex = grading.exercise("NN", ...)`` with ``@ex.unit`` / ``@ex.live`` functions (see
``xdplab.grading``). Modules here are found and imported by ``grading.get``."""
