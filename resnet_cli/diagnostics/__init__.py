"""What explains a model: the test pass, metrics, Grad-CAM, figures, previews, the diagnostics
report and predictions on image files.
"""
