"""The cost model: what a job is billed and estimated, from the data it loads.

A job's *volume* is what its ``load_collection`` calls read: pixels (x * y) x dates x bands,
summed over the calls. The process decides the volume (its extents, its period, the bands it
asks for, how often it loads), so a cloud-free composite of one 5 km tile over a summer at 10 m
is 250,000 pixels x 19 dates x 4 bands = 19 million values.

- **costs** (credits) = ``cost_per_million_values`` x values / 1e6: the same formula bills a
  finished job (volume counted while it ran) and answers ``GET /jobs/{id}/estimate`` (volume
  counted by a dry run of the same process graph on a few pixels), so the two can be compared;
- **duration** (estimate) = the mean queue time + the larger of the mean run time and the
  compute time at :data:`VALUES_PER_SECOND`;
- **size** (estimate) = the uncompressed bytes of the saved results (the GeoTIFFs are DEFLATE
  compressed, so the files are usually smaller).
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Compute speed of one worker on the cloud-free composite (measured on the 2-core machine this
#: was developed on: ~19 M values in ~1.3 s). Only used to estimate durations.
VALUES_PER_SECOND = 15e6


@dataclass
class Volume:
    """What a job's processes loaded and are to save."""

    pixels: int = 0  # x * y, summed over load_collection calls
    values: int = 0  # x * y * dates * bands, summed
    dates: int = 0  # of the largest load
    bands: int = 0  # of the largest load
    output_bytes: int = 0  # uncompressed bytes of the saved results
    loads: list[tuple[int, int, int]] = field(default_factory=list)  # (pixels, dates, bands) per call

    def add_load(self, pixels: int, dates: int, bands: int) -> None:
        self.loads.append((pixels, dates, bands))
        self.pixels += pixels
        self.values += pixels * dates * bands
        if pixels * dates * bands >= max((p * d * b for p, d, b in self.loads), default=0):
            self.dates, self.bands = dates, bands

    @property
    def pixel_dates(self) -> int:
        """pixels x dates summed over the loads (the measure of ``POST /result``'s size limit)."""
        return sum(p * d for p, d, _b in self.loads)


def job_credits(volume: Volume, cost_per_million_values: float) -> float:
    """What a job with this volume costs (billed and estimated alike)."""
    return round(volume.values / 1e6 * cost_per_million_values, 6)


def estimated_seconds(volume: Volume, mean_queue: float, mean_run: float) -> float:
    return mean_queue + max(mean_run, volume.values / VALUES_PER_SECOND)


def iso_duration(seconds: float) -> str:
    """ISO 8601 duration, e.g. ``PT1M5.2S`` (the spec's format for estimates)."""
    minutes, rest = divmod(max(0.0, seconds), 60)
    hours, minutes = divmod(int(minutes), 60)
    text = "PT" + (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    return text + f"{round(rest, 1):g}S"
