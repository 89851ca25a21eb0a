"""Draw the console's demo district: a fictional part of Hongshan town (Wuxi), around
31.49 N, 120.43 E — streets with names, the blocks between them, a canal, a park and two
community clinics — as GeoJSON, the map's base layer when no tile server is set.

Deterministic (no randomness, fixed rounding and key order): running it again gives the same
bytes, so the committed file changes only when this script does.

    python tools/make_district.py > src/hongshan/web/district.geojson
"""

from __future__ import annotations

import json
import sys
from typing import Any

SOUTH, WEST = 31.4835, 120.4220  # the district's south-west corner
STEP_LAT = 0.00135  # 150 m between east-west streets
STEP_LON = 0.00158  # 150 m between north-south streets, at this latitude
ROWS, COLUMNS = 8, 10  # blocks south to north, west to east
INSET = 0.12  # of a step: the pavement between a block and its streets

EAST_WEST = (
    "Xiqiao Road",
    "Meicun Street",
    "Bodu Road",
    "Hongshan Road",
    "Xinyuan Street",
    "Taibo Road",
    "Wangzhuang Street",
    "Dongting Street",
    "Shuanghong Road",
)
NORTH_SOUTH = (
    "Canal Lane",
    "Liyuan Lane",
    "Chunhui Road",
    "Qingfeng Lane",
    "Market Street",
    "Hongxing Road",
    "Longtan Lane",
    "Xinghe Road",
    "Guangming Lane",
    "Tongan Road",
    "Dongbian Road",
)
PARK = (3, 4)  # (row, column) of the block that is Meicun Park (and the one east of it)
CLINICS = (
    ("Meicun Community Clinic", 1, 2),
    ("Hongshan East Community Clinic", 5, 7),
)


def point(row: float, column: float) -> list[float]:
    """[lon, lat] (GeoJSON's order) of a point given in street steps from the corner."""
    return [round(WEST + column * STEP_LON, 6), round(SOUTH + row * STEP_LAT, 6)]


def feature(kind: str, name: str, geometry: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "Feature",
        "properties": {"kind": kind, "name": name},
        "geometry": geometry,
    }


def ring(south: float, west: float, north: float, east: float) -> list[list[float]]:
    return [
        point(south, west),
        point(south, east),
        point(north, east),
        point(north, west),
        point(south, west),
    ]


def district() -> dict[str, Any]:
    features = []
    park_blocks = {PARK, (PARK[0], PARK[1] + 1)}
    clinic_blocks = {(row, column) for _, row, column in CLINICS}
    for row in range(ROWS):
        for column in range(COLUMNS):
            if (row, column) in park_blocks:
                continue
            kind = "clinic-grounds" if (row, column) in clinic_blocks else "block"
            name = f"Block {chr(ord('A') + row)}{column + 1}"
            box = ring(row + INSET, column + INSET, row + 1 - INSET, column + 1 - INSET)
            features.append(feature(kind, name, {"type": "Polygon", "coordinates": [box]}))
    row, column = PARK
    park = ring(row + INSET, column + INSET, row + 1 - INSET, column + 2 - INSET)
    features.append(feature("park", "Meicun Park", {"type": "Polygon", "coordinates": [park]}))
    canal = [point(-0.4, 0.3), point(2.5, 0.5), point(5.0, 0.2), point(ROWS + 0.4, 0.45)]
    features.append(feature("water", "Bodu Canal", {"type": "LineString", "coordinates": canal}))
    for row, name in enumerate(EAST_WEST):
        line = [point(row, 0), point(row, COLUMNS)]
        features.append(feature("street", name, {"type": "LineString", "coordinates": line}))
    for column, name in enumerate(NORTH_SOUTH):
        line = [point(0, column), point(ROWS, column)]
        features.append(feature("street", name, {"type": "LineString", "coordinates": line}))
    avenue = [point(0, 2), point(ROWS, COLUMNS - 1)]
    features.append(
        feature("street", "Hongshan Avenue", {"type": "LineString", "coordinates": avenue})
    )
    for name, row, column in CLINICS:
        at = point(row + 0.5, column + 0.5)
        features.append(feature("clinic", name, {"type": "Point", "coordinates": at}))
    return {
        "type": "FeatureCollection",
        "name": "Hongshan demo district (fictional)",
        "features": features,
    }


if __name__ == "__main__":
    json.dump(district(), sys.stdout, separators=(",", ":"), sort_keys=True)
    sys.stdout.write("\n")
