"""Dependencies handed to routes: the loaded model and the settings."""

from typing import Annotated

from fastapi import Depends, Request

from app.errors import ModelNotReady
from app.model import Predictor
from app.settings import Settings


def get_predictor(request: Request) -> Predictor:
    predictor: Predictor | None = getattr(request.app.state, "predictor", None)
    if predictor is None:
        raise ModelNotReady("the model is not loaded yet; retry when /ready answers 200")
    return predictor


def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


PredictorDep = Annotated[Predictor, Depends(get_predictor)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
