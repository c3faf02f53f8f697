"""Procedural front camera: render(field, pose) -> float32 [3, 64, 64], RGB in ~[0, 1].

Each pixel's ray is cast against a few horizontal slices through the plant
canopies (top first, so the first hit is the nearest) and then the ground
plane. Plants are domes around their stems; the ground is soil with value-noise
texture, furrows and weeds; lighting varies per field and frame.

Pose: (s, y, theta) = distance along the field (m), lateral offset left of
the gap's centre line (m), heading relative to the row direction (rad, left
positive). Labels for a pose: Field.pose_labels.
"""
import numpy as np

from field import ROW_OFFSETS

SIZE = 64                 # pixels, square image
CAM_HEIGHT = 0.4          # m above ground
CAM_PITCH = np.radians(30.0)   # down from horizontal
FOV = np.radians(70.0)    # horizontal and vertical field of view
SLICES = (0.30, 0.22, 0.15, 0.08, 0.02)  # m, canopy slice heights, top first
HAZE = 7.0                # m, distance scale of the haze
SKY = np.array([0.75, 0.82, 0.92])


def camera_rays(pitch=CAM_PITCH):
    """Unit-free ray directions (forward, left, up) per pixel, each [SIZE*SIZE]."""
    c = (np.arange(SIZE) + 0.5) / SIZE * 2 - 1
    yn, xn = np.meshgrid(-c, c, indexing="ij")     # yn: +1 at top row
    t = np.tan(FOV / 2)
    fwd = np.cos(pitch) + yn * t * np.sin(pitch)
    left = -xn * t
    up = -np.sin(pitch) + yn * t * np.cos(pitch)
    return fwd.ravel(), left.ravel(), up.ravel()


def _hash(i, j, seed):
    """Pseudo-random values in [0, 1) per integer lattice point."""
    h = np.sin(i * 12.9898 + j * 78.233 + seed * 0.001) * 43758.5453
    return h - np.floor(h)


def value_noise(x, y, seed):
    """Smooth noise in [0, 1) at points (x, y) in lattice units."""
    i, j = np.floor(x), np.floor(y)
    fx, fy = x - i, y - j
    fx, fy = fx * fx * (3 - 2 * fx), fy * fy * (3 - 2 * fy)
    a, b = _hash(i, j, seed), _hash(i + 1, j, seed)
    c, d = _hash(i, j + 1, seed), _hash(i + 1, j + 1, seed)
    return (a + (b - a) * fx) * (1 - fy) + (c + (d - c) * fx) * fy


def _plant_hit(field, s, v, z):
    """Per point at height z (m): hit mask and plant colour factor (or 0)."""
    w = field.spacing
    k = np.clip(np.floor(v / w).astype(np.int64), -2, 1)   # nearest row: (k+0.5)*w
    row = k + 2
    dv = v - (k + 0.5) * w
    base = np.rint(s / field.plant_step).astype(np.int64)
    n = field.p_rad.shape[1]
    hit = np.zeros(s.shape, dtype=bool)
    green = np.zeros(s.shape)
    for off in (0, -1, 1):
        i = np.clip(base + off, 0, n - 1)
        ds = s - (i * field.plant_step + field.p_ds[row, i])
        dd = dv - field.p_dv[row, i]
        h = field.p_hgt[row, i]
        r2 = field.p_rad[row, i] ** 2 * np.clip(1 - (z / h) ** 2, 0, 1)
        new = field.p_on[row, i] & (ds * ds + dd * dd < r2) & ~hit
        hit |= new
        green = np.where(new, field.p_green[row, i], green)
    return hit, green


def _ground(field, X, s, v):
    """Ground colour [n, 3] at ground points (soil texture, furrows, weeds)."""
    sc = field.tex_scale
    tex = value_noise(X / sc, v / sc, field.tex_seed) * 0.65 + value_noise(X / (3 * sc), v / (3 * sc), field.tex_seed + 7) * 0.35
    furrow = field.furrow_amp * np.cos(2 * np.pi * v / (field.spacing / 2))
    col = field.soil[None, :] * (1 + field.tex_amp * (tex - 0.5) * 2 + furrow)[:, None]
    ci = np.clip((s / field.w_cell).astype(np.int64), 0, field.w_on.shape[0] - 1)
    vv = v + 2 * field.spacing
    cj = np.clip((vv / field.w_cell).astype(np.int64), 0, field.w_on.shape[1] - 1)
    dx = s - (ci * field.w_cell + field.w_dx[ci, cj])
    dy = vv - (cj * field.w_cell + field.w_dy[ci, cj])
    weed = field.w_on[ci, cj] & (dx * dx + dy * dy < field.w_rad[ci, cj] ** 2)
    col[weed] = field.leaf * np.array([1.2, 0.85, 1.3])
    return col


def render(field, pose, rng=None):
    """Camera frame float32 [3, SIZE, SIZE] for pose (s m, y m, theta rad).

    rng (optional numpy Generator) adds per-frame camera shake, lighting
    flicker and pixel noise; without it the frame is a pure function of pose."""
    s0, y0, theta = pose
    pitch, height, flick = CAM_PITCH, CAM_HEIGHT, 1.0
    if rng is not None:
        pitch += rng.normal(0, 0.02)
        height += rng.normal(0, 0.01)
        flick = 1 + rng.normal(0, 0.05)
    f, l, u = camera_rays(pitch)
    a = field.direction(s0) + theta
    wx, wy = f * np.cos(a) - l * np.sin(a), f * np.sin(a) + l * np.cos(a)
    xc, yc = s0, field.centre(s0) + y0
    down = u < -1e-3
    col = np.tile(SKY, (u.size, 1))
    dist = np.full(u.size, np.inf)
    todo = down.copy()
    for z in SLICES:
        idx = np.flatnonzero(todo)
        t = (height - z) / -u[idx]
        X, Y = xc + t * wx[idx], yc + t * wy[idx]
        s, v = field.row_frame(X, Y)
        hit, green = _plant_hit(field, s, v, z)
        hi = idx[hit]
        shade = (0.55 + 0.45 * z / SLICES[0]) * green[hit]
        leafn = 0.8 + 0.4 * value_noise(X[hit] / 0.03, Y[hit] / 0.03, field.tex_seed + 3)
        col[hi] = field.leaf[None, :] * (shade * leafn)[:, None]
        dist[hi] = t[hit]
        todo[hi] = False
    idx = np.flatnonzero(todo)
    t = height / -u[idx]
    X, Y = xc + t * wx[idx], yc + t * wy[idx]
    s, v = field.row_frame(X, Y)
    col[idx] = _ground(field, X, s, v)
    dist[idx] = t
    fog = np.where(np.isfinite(dist), 1 - np.exp(-dist / HAZE), 1.0)[:, None]
    col = col * (1 - fog) + SKY[None, :] * fog
    img = col.T.reshape(3, SIZE, SIZE)
    return _light(field, img, flick, rng)


def _light(field, img, flick, rng):
    """Brightness, colour cast, shading gradient and pixel noise."""
    c = np.linspace(-1, 1, SIZE)
    grad = 1 + 0.15 * (field.sun[0] * c[None, :] + field.sun[1] * c[:, None])
    img = img * (field.brightness * flick) * field.tint[:, None, None] * grad[None]
    if rng is not None:
        img = img + rng.normal(0, field.noise, img.shape)
    return np.clip(img, 0, 1).astype(np.float32)
