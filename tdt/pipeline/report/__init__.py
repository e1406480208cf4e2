"""``tdt report RUN...``: a static HTML supplement built from verified runs (see ``_build``)."""

from tdt.pipeline.report._build import (
    SUPPLEMENT_DIR,
    build_report,
    default_report_dir,
    render_notebook,
    reproduce_block,
)

__all__ = ["SUPPLEMENT_DIR", "build_report", "default_report_dir", "render_notebook",
           "reproduce_block"]
