"""Live confusion matrix: how the served model does on what users confirmed or corrected."""

from __future__ import annotations

import streamlit as st

from digit_app import insights, model_store
from digit_app.config import get_settings
from digit_app.feedback import SOURCES, FeedbackStore, Filters
from digit_app.pages.common import guarded, heatmap

REFRESH_SECONDS = 3


def view() -> None:
    st.title("Live confusion matrix")
    st.caption(
        "Every confirmation and correction users save on the Draw and Upload pages, as a confusion "
        f"matrix that refreshes by itself every {REFRESH_SECONDS} s."
    )
    settings = get_settings()
    store = FeedbackStore(settings=settings)
    versions = model_store.list_versions(settings.model_dir)
    served = versions[-1] if versions else None
    known = sorted(set(store.model_versions()) | ({served} if served else set()))
    left, mid, right = st.columns([2, 2, 1])
    chosen = left.multiselect(
        "Model version",
        known,
        default=[served] if served else [],
        key="versions",
        help="Empty = all versions",
    )
    sources = mid.multiselect("Source", list(SOURCES), default=[], key="sources", help="Empty = all sources")
    normalized = right.toggle("Row-normalized", value=False, key="normalized")
    filters = Filters(model_versions=chosen or None, sources=sources or None)
    live(store, filters, normalized, served)


@st.fragment(run_every=REFRESH_SECONDS)
def live(store: FeedbackStore, filters: Filters, normalized: bool, served: int | None) -> None:
    settings = get_settings()
    s = insights.summary(store, filters)
    a, b, c = st.columns(3)
    a.metric("Samples", f"{s.n:,}")
    b.metric("Accuracy on feedback", "–" if s.accuracy is None else f"{s.accuracy:.1%}")
    c.metric("Corrections", f"{s.n - s.correct:,}")
    left, right = st.columns(2, gap="large")
    with left:
        if s.n:
            heatmap(insights.matrix_frame(s.counts, normalized), "Users' feedback", normalized)
        else:
            st.info("No feedback for this selection yet: confirm or correct a prediction on the Draw page.")
    with right:
        test_cm = insights.test_confusion(settings.model_dir, served)
        if test_cm is not None:
            heatmap(
                insights.matrix_frame(test_cm, normalized), f"MNIST test set (version {served})", normalized
            )
        else:
            st.info("The served version's card has no test-set confusion matrix.")
    pairs = insights.confused_pairs(store, filters)
    if pairs:
        st.subheader("Most confused")
        for pair in pairs:
            st.markdown(f"**{pair.true} read as {pair.predicted}** · {pair.count}×")
            if pair.examples:
                st.image([img.clip(0, 1) for img in pair.examples], width=56, clamp=True)


guarded(view)
