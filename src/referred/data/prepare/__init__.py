"""Turn the published Hugging Face metadata plus img2dataset downloads into a trainable folder.

See ``docs/data.md`` for the whole path (img2dataset → ``referred data prepare`` →
``referred data check``).
"""

from referred.data.prepare.build import SplitCounts
from referred.data.prepare.download import (
    DownloadConfig,
    DownloadRun,
    download_images,
    find_img2dataset,
    img2dataset_command,
    run_img2dataset,
    write_url_list,
)
from referred.data.prepare.outcomes import (
    DownloadReport,
    normalise_reason,
    read_outcomes,
    read_run_stats,
)
from referred.data.prepare.run import (
    PrepareConfig,
    PrepareReport,
    prepare_dataset,
    wanted_urls,
)

__all__ = [
    "DownloadConfig",
    "DownloadReport",
    "DownloadRun",
    "PrepareConfig",
    "PrepareReport",
    "SplitCounts",
    "download_images",
    "find_img2dataset",
    "img2dataset_command",
    "normalise_reason",
    "prepare_dataset",
    "read_outcomes",
    "read_run_stats",
    "run_img2dataset",
    "wanted_urls",
    "write_url_list",
]
