"""Retrain with corrections: review the feedback, start a retraining, watch it, roll back versions."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import streamlit as st

from digit_app import admin, autoretrain, insights
from digit_app.config import get_settings, retrain_config_dict
from digit_app.feedback import SOURCES, FeedbackError, FeedbackStore
from digit_app.jobs import Job, JobBusyError, JobStore
from digit_app.model_store import ModelStoreError
from digit_app.pages.common import admin_password, guarded, session_id
from digit_app.suspicion import ACCEPTED, REJECTED, is_suspect

PER_PAGE = 12


def _when(ts: float | None) -> str:
    return "–" if not ts else dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _admin_call(action, *args) -> object | None:  # noqa: ANN001 - any admin function
    """Run an admin action; a refusal or a busy lock becomes a message, not a traceback."""
    try:
        result = action(*args, client=session_id())
        return True if result is None else result
    except (admin.AdminError, JobBusyError, ModelStoreError, FeedbackError, ValueError) as exc:
        st.error(str(exc))
    return None


def view() -> None:
    st.title("Retrain with corrections")
    settings = get_settings()
    store = FeedbackStore(settings=settings)
    password = admin_password()
    threshold = float(retrain_config_dict()["suspect_threshold"])
    overview = insights.corrections_overview(
        store,
        settings.model_dir,
        page=st.session_state.get("page", 0),
        per_page=PER_PAGE,
        threshold=threshold,
        label=st.session_state.get("filter_digit"),
        sources=st.session_state.get("filter_sources") or None,
    )
    a, b, c = st.columns(3)
    a.metric("Feedback samples", f"{overview.total:,}")
    b.metric("Corrections", f"{overview.corrections:,}")
    c.metric("New since the served version", f"{overview.new_since_served:,}")

    st.subheader("Retraining")
    st.caption(
        "Fine-tunes the served model on the stored feedback mixed with a replay of MNIST and real handwriting, "
        "in a separate process. First every stored label is checked against the served model and the "
        f"nearest training digits; corrections scoring {threshold:.2f} or more are held out unless an admin "
        "accepted them, and rejected ones are never used. The result is published only if it keeps MNIST "
        "accuracy (at most 0.1 point lower) and gets the feedback it learned from right."
    )
    auto = autoretrain.status(settings)
    if auto.enabled:
        st.caption(auto.summary())
    if st.button("Retrain", type="primary", icon=":material/model_training:", disabled=overview.total == 0):
        job = _admin_call(admin.start_retrain, password, None)
        if job is not None:
            st.toast(f"Retraining job {job.id} started")
    job_panel(password)

    st.subheader("Stored feedback")
    corrections_list(store, overview, password, threshold)

    st.subheader("Model versions")
    versions_panel(password)

    with st.expander("Privacy"):
        st.write(
            "Each saved confirmation or correction keeps the 28x28 model input, the drawing or the crop of the "
            "upload, the labels, the probabilities, the model version, the time and an anonymous session id."
        )
        if st.button("Delete everything this session saved", key="delete_mine"):
            n = store.delete_session(session_id())
            st.success(f"Deleted {n} sample(s) saved by this session.")
        st.caption("Admins: export everything stored, or purge the stored images (the 28x28 inputs stay).")
        left, right = st.columns(2)
        if left.button("Prepare export (zip)", key="export"):
            blob = _admin_call(admin.export_feedback, password)
            if isinstance(blob, bytes):
                st.download_button(
                    "Download feedback.zip", blob, "feedback.zip", "application/zip", key="export_dl"
                )
        if right.button("Purge stored images", key="purge"):
            n = _admin_call(admin.purge_images, password)
            if isinstance(n, int) and not isinstance(n, bool):
                st.success(f"Removed the original images of {n} row(s).")


@st.fragment(run_every=1.0)
def job_panel(password: str | None) -> None:
    jobs = JobStore()
    recent = jobs.recent(1)
    if not recent:
        st.caption("No retraining has run yet.")
        return
    job = recent[0]
    if job.active:
        p = job.progress
        fraction = float(p.get("fraction", 0.0))
        detail = (
            f"epoch {p.get('epoch')}/{p.get('epochs')} · step {p.get('step')}/{p.get('steps')} · "
            f"elapsed {p.get('elapsed', 0):.0f} s · ETA {p.get('eta', 0):.0f} s"
            if "step" in p
            else f"{p.get('phase', job.status)} · elapsed {p.get('elapsed', 0):.0f} s"
        )
        st.progress(
            min(max(fraction, 0.0), 1.0), text=f"Job {job.id}: {p.get('phase', job.status)} — {detail}"
        )
        if st.button("Cancel", key=f"cancel-{job.id}", disabled=job.cancel_requested):
            _admin_call(admin.cancel_job, job.id, password)
    else:
        show_outcome(job)
    with st.expander(f"Log of job {job.id}"):
        st.code(job.log_tail() or "(no output yet)", language=None)


# Accuracies as 99.60%, not 99.6%: versions a hundredth of a point apart must line up.
PERCENT = "%.2f%%"


def as_percent(table: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Fractions shown as percentages (Streamlit's "percent" format drops trailing zeros)."""
    return table.assign(**{c: pd.to_numeric(table[c], errors="coerce") * 100 for c in columns})


def show_outcome(job: Job) -> None:
    text = f"Job {job.id} {job.status} at {_when(job.finished_at)}: {job.message or ''}"
    {"published": st.success, "rejected": st.warning}.get(job.status, st.error)(text)
    gate = job.result.get("gate")
    labels = (gate or {}).get("labels")
    if labels:
        st.caption(
            f"Learned from {labels['used']} of {labels['stored']} stored samples: {labels['held_out_suspect']} held"
            f" out as suspect, {labels['accepted']} accepted and {labels['rejected']} rejected by an admin."
        )
    if gate:
        table = pd.DataFrame(
            {
                "": ["MNIST test accuracy", "feedback accuracy"],
                "served": [gate["mnist_test"]["served"], gate["feedback"]["served"]],
                "candidate": [gate["mnist_test"]["candidate"], gate["feedback"]["candidate"]],
            }
        )
        st.dataframe(
            as_percent(table, ["served", "candidate"]),
            hide_index=True,
            column_config={
                "served": st.column_config.NumberColumn(format=PERCENT),
                "candidate": st.column_config.NumberColumn(format=PERCENT),
            },
        )


def corrections_list(
    store: FeedbackStore, overview: insights.CorrectionsOverview, password: str | None, threshold: float
) -> None:
    left, right = st.columns(2)
    left.selectbox(
        "Digit (the stored label)",
        [None, *range(10)],
        key="filter_digit",
        format_func=lambda d: "all" if d is None else str(d),
    )
    right.multiselect("Source", list(SOURCES), key="filter_sources")
    if not overview.rows:
        st.info("No corrections stored yet. Correct a prediction on the Draw or Upload page.")
        return
    st.caption(
        f"{overview.suspects} suspect correction(s) first (likely wrong labels, held out of retraining until"
        " accepted), then the ones the model was least sure about, then the rest."
    )
    pages = max(1, -(-overview.listed // PER_PAGE))
    if pages > 1:
        st.number_input("Page", 1, pages, key="page_number", on_change=_set_page)
    cols = st.columns(4)
    for i, row in enumerate(overview.rows):
        with cols[i % 4]:
            correction_card(row, overview.thumbnails.get(row.id), password, threshold)


def correction_card(row: object, img: object, password: str | None, threshold: float) -> None:
    """One stored correction: thumbnail, labels, why it is (or is not) suspect, and the admin's actions."""
    if img is not None:
        st.image(img.clip(0, 1), width=56, clamp=True)
    suspect = is_suspect(row.suspicion, row.suspicion_checked, row.review, threshold)
    flag = "**suspect** · " if suspect else (f"{row.review} · " if row.review else "")
    st.caption(f"{flag}#{row.id} · read as {row.predicted}, labelled **{row.label}** · {row.source}")
    if row.suspicion_reason:
        st.caption(f"suspicion {row.suspicion:.2f}: {row.suspicion_reason}")
    if suspect or row.review:
        for column, decision, text in zip(st.columns(2), (ACCEPTED, REJECTED), ("Accept", "Reject")):
            pressed = column.button(text, key=f"{decision}-{row.id}", disabled=row.review == decision)
            if pressed and _admin_call(admin.review_feedback, row.id, decision, password) is not None:
                st.rerun()
    label = st.selectbox("Label", list(range(10)), index=row.label, key=f"label-{row.id}")
    b1, b2 = st.columns(2)
    relabel = b1.button("Relabel", key=f"relabel-{row.id}", disabled=label == row.label)
    if relabel and _admin_call(admin.relabel_feedback, row.id, label, password) is not None:
        st.rerun()
    delete = b2.button("Delete", key=f"delete-{row.id}")
    if delete and _admin_call(admin.delete_feedback, [row.id], password) is not None:
        st.rerun()


def _set_page() -> None:
    st.session_state["page"] = int(st.session_state["page_number"]) - 1


def versions_panel(password: str | None) -> None:
    settings = get_settings()
    table = insights.versions_table(settings.model_dir)
    if table.empty:
        st.info("No model version is published.")
        return
    st.dataframe(
        as_percent(table, ["MNIST test accuracy", "learned feedback"]),
        hide_index=True,
        column_config={
            "MNIST test accuracy": st.column_config.NumberColumn(format=PERCENT),
            "learned feedback": st.column_config.NumberColumn(format=PERCENT),
            "macro F1": st.column_config.NumberColumn(format="%.4f"),
            "feedback samples": st.column_config.NumberColumn(format="%d"),
            "held out as suspect": st.column_config.NumberColumn(format="%d"),
            "accepted by an admin": st.column_config.NumberColumn(format="%d"),
            "rejected by an admin": st.column_config.NumberColumn(format="%d"),
        },
    )
    older = [int(v) for v in table["version"].tolist()[1:]]
    if older:
        left, right = st.columns([2, 1])
        target = left.selectbox("Roll back to version", older, key="rollback_to")
        right.write("")
        if right.button("Roll back", key="rollback"):
            new = _admin_call(admin.rollback, target, password)
            if new is not None:
                st.success(f"Version {target} republished as version {new}; the app now serves it.")


guarded(view)
