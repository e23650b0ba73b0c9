"""Great Expectations Data Docs of one evaluation's validation results, readable offline.

The rule engine validates with an ephemeral GX context and keeps each suite's
``ExpectationSuiteValidationResult`` (``Evaluation.results``). Here a second ephemeral
context gets a file-backed validation-results store in the report folder; the results
are stored in it under one run, the suites they came from are put back into its
(in-memory) suite store, and GX's own ``build_data_docs`` renders the site with GX's
page renderers.

Only the outermost templates differ from GX's: its pages load jQuery, Bootstrap, Vega and
a logo from CDNs and S3, which an Airflow deployment behind a firewall cannot reach (the
pages then render unstyled, and the index, which bootstrap-table fills in the browser,
renders empty). ``OfflinePageView`` puts ``templates/data_docs`` in front of GX's template
folder: the same content blocks, no scripts, a server-rendered index table, a small
stylesheet in place of Bootstrap, and a link back to the report.
"""

from __future__ import annotations

import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

from jinja2 import ChoiceLoader, PackageLoader

from sa_hygiene.engine.gx import import_gx

SITE = "sa_hygiene"


def _offline(env) -> None:
    env.loader = ChoiceLoader([PackageLoader("sa_hygiene.web", "templates/data_docs"), env.loader])


def _views():
    """The view classes the site configuration names (GX imports them by module and class name)."""
    from great_expectations.render.view import DefaultJinjaIndexPageView, DefaultJinjaPageView

    class OfflinePageView(DefaultJinjaPageView):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            _offline(self.env)

    class OfflineIndexPageView(DefaultJinjaIndexPageView):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            _offline(self.env)

    return OfflinePageView, OfflineIndexPageView


def __getattr__(name: str):
    # GX instantiates views from configuration (module_name + class_name); the classes are
    # built on first use so that importing this module does not import GX.
    if name in ("OfflinePageView", "OfflineIndexPageView"):
        page, index = _views()
        globals().update(OfflinePageView=page, OfflineIndexPageView=index)
        return globals()[name]
    raise AttributeError(name)


def _context(folder: Path):
    gx = import_gx()
    from great_expectations.data_context.types.base import DataContextConfig, InMemoryStoreBackendDefaults

    view = {"module_name": __name__, "class_name": "OfflinePageView"}
    config = DataContextConfig(store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False))
    config.stores[config.validation_results_store_name] = {
        "class_name": "ValidationResultsStore",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(folder / "results")},
    }
    config.data_docs_sites = {
        SITE: {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(folder)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder",
                                   "view": {"module_name": __name__, "class_name": "OfflineIndexPageView"}},
            "site_section_builders": {
                "expectations": {"view": view},
                "validations": {"view": view},
                "profiling": "None",
            },
        }
    }  # fmt: skip
    return gx.get_context(project_config=config, mode="ephemeral")


def build_data_docs(results: list, folder: str | Path, run_name: str, run_time: datetime) -> list[dict]:
    """Render ``results`` (one evaluation's GX validation results) as Data Docs under ``folder``
    (its ``index.html`` lists them all).

    Returns one entry per result, in run order: the suite, the asset, whether it passed, how
    many expectations failed, and its page relative to ``folder``. A suite validated more
    than once in a run (a workflow whose expectations read differently shaped batches) keeps
    each result, told apart by batch.
    """
    from great_expectations.core.run_identifier import RunIdentifier
    from great_expectations.data_context.types.resource_identifiers import (
        ExpectationSuiteIdentifier,
        ValidationResultIdentifier,
    )

    folder = Path(folder)
    context = _context(folder)
    run = RunIdentifier(run_name=run_name, run_time=run_time)
    suites: dict[str, list] = {}
    pages = []
    for n, result in enumerate(results, start=1):
        result.meta["run_id"] = run
        result.meta["validation_time"] = run_time
        asset = (result.meta.get("active_batch_definition") or {}).get("data_asset_name", "batch")
        # The page's "Data asset" is read from the batch spec, which a dataframe batch leaves without one.
        result.meta["batch_spec"] = {**(result.meta.get("batch_spec") or {}), "data_asset_name": asset}
        key = ValidationResultIdentifier(ExpectationSuiteIdentifier(name=result.suite_name), run, f"{n:02d}-{asset}")
        context.validation_results_store.set(key, result)
        suites.setdefault(result.suite_name, []).extend(r.expectation_config for r in result.results)
        failed = sum(1 for r in result.results if not r.success)
        pages.append({"suite": result.suite_name, "asset": asset, "success": bool(result.success),
                      "expectations": len(result.results), "failed": failed,
                      "page": "validations/" + "/".join(key.to_tuple()) + ".html"})  # fmt: skip
    gx = import_gx()
    for name, configs in suites.items():
        context.suites.add(gx.ExpectationSuite(name=name, expectations=[c.to_domain_obj() for c in configs]))
    context.build_data_docs(site_names=[SITE])
    # GX copies its fonts and images (4 MB) into every site; the offline pages use none of them.
    shutil.rmtree(folder / "static", ignore_errors=True)
    return pages
