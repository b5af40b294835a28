"""The paper's Figures 1-4 (paper 001): which split and which range of majority shares each one shows.

Kept free of torch: the workflow reads it while it builds the DAG (file names, report labels).
"""

FAIRFACE_FIGURES = {"60-90": (0.6, 0.9), "91-99": (0.91, 0.99)}  # file tag -> share range
SPLITS = ("train", "test")
PAPER_FIGURE = {("train", "60-90"): 1, ("test", "60-90"): 2, ("train", "91-99"): 3, ("test", "91-99"): 4}
