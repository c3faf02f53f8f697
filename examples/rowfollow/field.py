"""Seeded procedural crop fields: two (and more) parallel rows with slow curvature.

Coordinates (metres): the world x axis runs along the field, so the distance s
along the field is x; the world y axis points to the left. The centre line of
the gap the robot drives in is y = centre(s); rows lie at lateral offsets
v = +/- spacing/2 (the two rows bounding the gap, left positive) and
+/- 3*spacing/2 (the neighbouring rows, seen by the camera only).
"""
import numpy as np

NOMINAL_SPACING = 0.76   # m, row spacing the controller assumes
ROW_OFFSETS = (-1.5, -0.5, 0.5, 1.5)  # row positions in units of spacing


class Field:
    """One field; all randomness comes from `seed` (an int or a SeedSequence)."""

    def __init__(self, seed, length=40.0):
        rng = np.random.default_rng(seed)
        self.length = float(length)                        # m
        self.spacing = NOMINAL_SPACING * rng.uniform(0.95, 1.05)  # m
        self._curve(rng)
        self._plants(rng)
        self._weeds(rng)
        self._look(rng)

    # -- geometry ---------------------------------------------------------
    def _curve(self, rng):
        """Centre line as a sum of slow sinusoids (amplitude m, wavelength m)."""
        n = 3
        self.c_amp = rng.uniform(0.0, 0.3, n) / np.arange(1, n + 1)
        self.c_wave = rng.uniform(12.0, 40.0, n) / np.arange(1, n + 1) ** 0.5
        self.c_phase = rng.uniform(0, 2 * np.pi, n)

    def centre(self, s):
        """Lateral position (m) of the gap's centre line at distance s (m)."""
        s = np.asarray(s, dtype=np.float64)
        k = 2 * np.pi / self.c_wave
        return np.sum(self.c_amp * np.sin(np.multiply.outer(s, k) + self.c_phase), axis=-1)

    def direction(self, s):
        """Direction (rad, from the world x axis) of the rows at distance s (m)."""
        s = np.asarray(s, dtype=np.float64)
        k = 2 * np.pi / self.c_wave
        slope = np.sum(self.c_amp * k * np.cos(np.multiply.outer(s, k) + self.c_phase), axis=-1)
        return np.arctan(slope)

    def row_frame(self, x, y):
        """World point (m) -> (s, v): distance along field, lateral offset from centre line."""
        return x, y - self.centre(x)

    # -- content ----------------------------------------------------------
    def _plants(self, rng):
        """Plants per row: position jitter, radius, height, colour, gaps (missing runs)."""
        self.plant_step = rng.uniform(0.12, 0.2)           # m between plants
        n = int(self.length / self.plant_step) + 8
        shape = (len(ROW_OFFSETS), n)
        self.p_ds = rng.normal(0, 0.02, shape)             # m along row
        self.p_dv = rng.normal(0, 0.015, shape)            # m across row
        growth = rng.uniform(0.6, 1.2)
        self.p_rad = growth * rng.uniform(0.05, 0.11, shape)  # m canopy radius
        self.p_hgt = growth * rng.uniform(0.12, 0.3, shape)   # m height
        self.p_green = rng.uniform(0.75, 1.25, shape)      # colour factor
        self.p_on = self._gaps(rng, shape)

    @staticmethod
    def _gaps(rng, shape):
        """Presence mask: mostly present, with runs of missing plants."""
        on = np.ones(shape, dtype=bool)
        rate = rng.uniform(0.0, 0.04)                      # gap starts per plant
        for r in range(shape[0]):
            starts = np.flatnonzero(rng.random(shape[1]) < rate)
            for st in starts:
                on[r, st:st + rng.integers(1, 8)] = False
        return on

    def _weeds(self, rng):
        """Weeds on a grid of cells (cell m); at most one per cell."""
        self.w_cell = 0.2
        density = rng.uniform(0.0, 0.35)
        nx = int(self.length / self.w_cell) + 8
        ny = int(4 * NOMINAL_SPACING / self.w_cell) + 2
        self.w_on = rng.random((nx, ny)) < density
        self.w_dx = rng.uniform(0.2, 0.8, (nx, ny)) * self.w_cell
        self.w_dy = rng.uniform(0.2, 0.8, (nx, ny)) * self.w_cell
        self.w_rad = rng.uniform(0.015, 0.05, (nx, ny))

    def _look(self, rng):
        """Lighting and ground appearance."""
        self.brightness = rng.uniform(0.55, 1.35)
        self.tint = rng.uniform(0.9, 1.1, 3)                   # RGB colour cast
        self.soil = np.array([0.45, 0.33, 0.22]) * rng.uniform(0.7, 1.25) * rng.uniform(0.88, 1.12, 3)
        self.leaf = np.array([0.22, 0.55, 0.15]) * rng.uniform(0.75, 1.2, 3)
        self.tex_scale = rng.uniform(0.04, 0.12)               # m, clod size
        self.tex_amp = rng.uniform(0.08, 0.3)
        self.furrow_amp = rng.uniform(0.0, 0.15)
        self.sun = rng.uniform(-1, 1, 2)                       # shading gradient
        self.noise = rng.uniform(0.005, 0.03)                  # pixel noise std
        self.tex_seed = int(rng.integers(1 << 30))

    # -- labels -----------------------------------------------------------
    def pose_labels(self, s, y, theta):
        """Ground truth for a pose (s m, y m left of centre, theta rad rel. to rows).

        heading: theta (rad, robot heading minus row direction, left positive).
        distance: d1/(d1+d2) with d1, d2 the distances (m) to the left and
        right rows bounding the gap: 0.5 in the centre, smaller when nearer
        the left row, in [0, 1] inside the gap.
        """
        d1 = self.spacing / 2 - y
        d2 = self.spacing / 2 + y
        return float(theta), float(d1 / (d1 + d2))
