"""Software-defined assets and their checks (thin wrappers over lerobot_lance)."""

from assets.dataset_assets import build_dataset_assets, partitions_name

__all__ = ["build_dataset_assets", "partitions_name"]
