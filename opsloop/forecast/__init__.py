"""Forecasts with prediction intervals, and when a forecast crosses a limit.

Pure numerics over plain arrays (numpy in, numpy out); the models come from statsforecast.
`grid` turns timestamped points into a regular series, `model` chooses and fits a model by a
documented rule, `crossing` says when the forecast (and each interval bound) reaches a limit.
"""

from opsloop.forecast.crossing import Crossing, crossing
from opsloop.forecast.grid import Grid, regular, step_for
from opsloop.forecast.model import Forecast, Kind, forecast, seasonal_naive

__all__ = ["Crossing", "Forecast", "Grid", "Kind", "crossing", "forecast", "regular",
           "seasonal_naive", "step_for"]
