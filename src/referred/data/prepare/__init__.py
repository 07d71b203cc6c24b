"""Turn the published Hugging Face metadata plus img2dataset downloads into a trainable folder.

See ``docs/data.md`` for the whole path (img2dataset → ``referred data prepare`` →
``referred data check``).
"""

from referred.data.prepare.build import SplitCounts
from referred.data.prepare.download import (
    find_img2dataset,
    img2dataset_command,
    run_img2dataset,
    write_url_list,
)
from referred.data.prepare.run import (
    PrepareConfig,
    PrepareReport,
    prepare_dataset,
    wanted_urls,
)

__all__ = [
    "PrepareConfig",
    "PrepareReport",
    "SplitCounts",
    "find_img2dataset",
    "img2dataset_command",
    "prepare_dataset",
    "run_img2dataset",
    "wanted_urls",
    "write_url_list",
]
