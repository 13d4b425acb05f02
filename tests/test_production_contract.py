"""The ProductionRepository contract, run against every backend."""

import pytest

from aicmo.errors import ValidationError
from aicmo.production import CreativeSpecDTO
from aicmo.testing.production import ProductionRepositoryContract, make_bundle


class TestProductionRepository(ProductionRepositoryContract):
    pass


class TestProductionDtos:
    """The DTOs' own rules (no repository involved)."""

    def test_bundle_refuses_repeated_asset_ids_naming_the_field(self) -> None:
        with pytest.raises(ValidationError) as info:
            make_bundle(asset_ids=("a", "b", "a", "b"))
        assert [path for path, _ in info.value.errors] == [
            "assets[2].asset_id",
            "assets[3].asset_id",
        ]
        assert "repeats assets[0].asset_id 'a'" in str(info.value)
        with pytest.raises(ValidationError, match=r"assets\[0\]\.asset_id: must not be empty"):
            make_bundle(assets=[{"asset_id": "", "asset_type": "image", "url": "u"}])
        with pytest.raises(ValidationError, match="assets: expected a sequence of assets"):
            make_bundle(assets="abc")
        spec = CreativeSpecDTO(format="png", dimensions="1200x630")
        assert spec.style_guide == {}
