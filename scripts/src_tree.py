"""What the structure checks (check_includes.py, function_lengths.py) share:
the C++ files under a source folder, in a stable order, and how paths are
printed. Python standard library only."""
import os

SOURCE_SUFFIXES = (".h", ".hh", ".hpp", ".cc", ".cpp", ".cxx", ".inc", ".ipp")
# src/ of the checkout these scripts are in.
DEFAULT_SRC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "src")


def source_files(src):
    """Paths of the C++ sources and headers under src, sorted by folder then name."""
    for root, dirs, files in os.walk(src):
        dirs.sort()
        for name in sorted(files):
            if name.endswith(SOURCE_SUFFIXES):
                yield os.path.join(root, name)


def shown_path(path, root):
    """path relative to root (the checkout) when inside it, else absolute: the same output from any folder."""
    rel = os.path.relpath(os.path.abspath(path), root)
    return os.path.abspath(path) if rel.startswith("..") else rel


def add_src_option(parser):
    """The --src option both checks take."""
    parser.add_argument("--src", default=DEFAULT_SRC, help="source folder (default: src/ of this checkout)")
