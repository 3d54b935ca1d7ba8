"""Reads a QuPath GeoJSON FeatureCollection with json + shapely (independent of Sagitta) and prints,
per feature, its classification, colour, polygon count and area (level-0 pixels^2). Exits non-zero
when a feature is not an annotation, lacks a classification, or has an invalid geometry."""
import json
import sys

from shapely.geometry import shape

collection = json.load(open(sys.argv[1]))
assert collection["type"] == "FeatureCollection"
for feature in collection["features"]:
    props = feature["properties"]
    assert props["objectType"] == "annotation", props
    cls = props["classification"]
    assert len(cls["color"]) == 3
    geometry = shape(feature["geometry"])
    assert geometry.is_valid, f"{cls['name']}: invalid geometry"
    parts = len(geometry.geoms) if hasattr(geometry, "geoms") else 1
    colour = ",".join(str(c) for c in cls["color"])
    print(f"class {cls['name'].replace(' ', '_')} color {colour} polygons {parts} area {geometry.area:.3f}")
