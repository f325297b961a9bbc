"""The absl binaries. Imported before any of them: keeps the console for the user.

TensorFlow's C++ start-up lines (CUDA plugin registration on a CPU machine) and
a deprecation warning from a dependency's `pkg_resources` import say nothing a
researcher can act on; `TF_CPP_MIN_LOG_LEVEL=0` brings TensorFlow's back.
"""

import os
import warnings

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '3')  # Before TensorFlow is imported.
warnings.filterwarnings('ignore', message='pkg_resources is deprecated', category=UserWarning)
