"""Dependencies handed to routes: the loaded model and the settings.

They are ``async`` so FastAPI calls them on the event loop: a plain ``def``
dependency is sent to the thread pool, which costs more than the lookup itself.
"""

from typing import Annotated, Final

from fastapi import Depends, Request

from app.errors import ModelNotReady
from app.model import Predictor
from app.observability.observer import Observer
from app.settings import Settings

ADMITTED: Final = "api_key_admitted"
"""Set in a request's state once its API key was checked and admitted."""


def caller_is_trusted(request: Request) -> bool:
    """Whether the caller may see the service's internals (database errors): any
    caller of a service without API keys, else one that sent a valid key."""
    if getattr(request.app.state, "keys", None) is None:
        return True
    return bool(request.scope.get("state", {}).get(ADMITTED))


async def get_predictor(request: Request) -> Predictor:
    predictor: Predictor | None = getattr(request.app.state, "predictor", None)
    if predictor is None:
        raise ModelNotReady("the model is not loaded yet; retry when /ready answers 200")
    return predictor


async def get_app_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_observer(request: Request) -> Observer | None:
    observer: Observer | None = request.app.state.observer
    return observer


PredictorDep = Annotated[Predictor, Depends(get_predictor)]
ObserverDep = Annotated[Observer | None, Depends(get_observer)]
SettingsDep = Annotated[Settings, Depends(get_app_settings)]
