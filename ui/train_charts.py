"""Plotly figures of training runs, shared by the Train and Metrics pages: training curves and the confusion matrix."""
from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from core.models.metrics import row_normalised


def curves_figure(epochs: pd.DataFrame) -> go.Figure:
    """Loss and accuracy per epoch (shown 1-based), training solid and validation dotted.

    epochs: db.runs.run_epochs columns.
    """
    figure = make_subplots(rows=1, cols=2, subplot_titles=("Loss", "Accuracy"))
    x = epochs["epoch"] + 1
    for column, name in enumerate(("loss", "accuracy"), start=1):
        figure.add_trace(go.Scatter(x=x, y=epochs[f"train_{name}"], name=f"train {name}", mode="lines+markers"),
                         row=1, col=column)
        figure.add_trace(go.Scatter(x=x, y=epochs[f"val_{name}"], name=f"validation {name}", mode="lines+markers",
                                    line={"dash": "dot"}), row=1, col=column)
    figure.update_xaxes(title_text="epoch", dtick=1)
    figure.update_layout(height=320, margin={"t": 40, "b": 10, "l": 10, "r": 10})
    return figure


def confusion_figure(metrics: dict[str, Any]) -> go.Figure:
    """The confusion matrix as a heatmap: colour = row-normalised rate, text = count and rate.

    Rows (y) are true classes, columns (x) predicted ones, in metrics["classes"]
    order. An invisible marker on every cell makes cells selectable
    (st.plotly_chart on_select reports the clicked cell's x and y).
    """
    classes = metrics["classes"]
    counts = np.asarray(metrics["confusion_matrix"], dtype=int)
    rates = row_normalised(counts)
    text = [[f"{count}<br>{rate:.0%}" for count, rate in zip(count_row, rate_row)]
            for count_row, rate_row in zip(counts, rates)]
    figure = go.Figure(go.Heatmap(
        z=rates, x=classes, y=classes, text=text, texttemplate="%{text}", colorscale="Blues", zmin=0, zmax=1,
        colorbar={"title": "share of<br>true class"},
        hovertemplate="true %{y}, predicted %{x}<br>%{text}<extra></extra>",
    ))
    grid_x, grid_y = np.meshgrid(classes, classes)
    figure.add_trace(go.Scatter(
        x=grid_x.ravel(), y=grid_y.ravel(), mode="markers", showlegend=False, hoverinfo="none",
        marker={"symbol": "square", "size": 28, "color": "rgba(0,0,0,0)"},
    ))
    side = max(360, 48 * len(classes) + 160)
    figure.update_layout(height=side, margin={"t": 30, "b": 10, "l": 10, "r": 10}, clickmode="event+select",
                         xaxis={"title": "predicted class", "side": "top", "type": "category"},
                         yaxis={"title": "true class", "autorange": "reversed", "type": "category"})
    return figure
