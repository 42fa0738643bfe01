"""Make sure the web service picked the champion up (it follows the alias; see helpers.serve.serving)."""

import requests

from helpers.core.polling import WaitTimeout, wait_for
from helpers.ml import registry

if "custom" not in globals():
    from mage_ai.data_preparation.decorators import custom


def health(service_url):
    try:
        return requests.get(f"{service_url.rstrip('/')}/health", timeout=5).json()
    except (requests.RequestException, ValueError) as error:
        return repr(error)


@custom
def check_serving(decision, *args, **kwargs):
    service_url = kwargs.get("service_url")
    champion = str(registry.version_by_alias(registry.CHAMPION).version)
    if not service_url:
        print(f"champion is v{champion}; no service_url given, so no web service to check")
        return {"champion": champion, "served": None}
    # The service reloads the alias every MODEL_REFRESH_SECONDS: wait up to a minute for the new version.
    try:
        served = wait_for(
            lambda: health(service_url),
            done=lambda seen: isinstance(seen, dict) and str(seen.get("model_version")) == champion,
            timeout=60,
            poll=0.5,
        )
    except WaitTimeout as waited:
        raise TimeoutError(
            f"{service_url} still answers {waited.last} after 60 s, not model version {champion}"
        ) from None
    print(f"{service_url} serves v{served['model_version']}")
    return {"champion": champion, "served": str(served["model_version"])}
