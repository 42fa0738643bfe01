"""Make sure the web service picked the champion up (it follows the alias; see helpers.serve.serving)."""

from helpers.ml import registry
from helpers.orchestrate import pipelines

if "custom" not in globals():
    from mage_ai.data_preparation.decorators import custom


@custom
def check_serving(decision, *args, **kwargs):
    service_url = kwargs.get("service_url")
    champion = registry.version_by_alias(registry.CHAMPION)
    if not service_url:
        print(f"champion is v{champion.version}; no service_url given, so no web service to check")
        return {"champion": str(champion.version), "served": None}
    health = pipelines.wait_for_serving(service_url, champion.version)
    print(f"{service_url} serves v{health['model_version']}")
    return {"champion": str(champion.version), "served": health["model_version"]}
