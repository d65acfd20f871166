"""A tiny deterministic ray caster for the pose-manifold data (NumPy only).

One rigid object, built from ellipsoids and boxes, stands on a turntable (the ground
plane z = 0). An orthographic camera looks at it from a fixed room azimuth and a given
elevation; the turntable turns the object by the azimuth. Lights are directional and
**fixed in the room**, so turning the object changes how it is lit.

Shading is Lambertian with cast shadows (the object shadows itself and the table)::

    I(pixel) = albedo * (ambient + sum_l  intensity_l * max(0, n . L_l) * visible_l)

``visible_l`` is 0 when a ray from the surface point towards light ``l`` hits the
object. Every pixel is the mean of ``supersample**2`` rays (anti-aliasing), then a
display gamma of 1/2.2 maps it to uint8.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from typing import Any
from .._typing import Array

#: 18 turntable azimuths (degrees): 0, 20, ..., 340 -- the circle wraps around.
AZIMUTHS = tuple(range(0, 360, 20))
#: 9 camera elevations (degrees), NORB's 30..70 in 5-degree steps.
ELEVATIONS = tuple(range(30, 75, 5))


@dataclass(frozen=True)
class Part:
    """One solid: an ellipsoid (radii) or a box (half sizes), turned by ``yaw`` about z
    and ``pitch`` about y (degrees, in the object's frame), with a grey ``albedo``."""

    kind: str  # "ellipsoid" or "box"
    center: tuple
    size: tuple
    albedo: float = 0.8
    yaw: float = 0.0
    pitch: float = 0.0

    def rotation(self) -> Any:
        cy, sy = math.cos(math.radians(self.yaw)), math.sin(math.radians(self.yaw))
        cp, sp = math.cos(math.radians(self.pitch)), math.sin(math.radians(self.pitch))
        rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
        ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
        return rz @ ry


def _airplane():
    """A toy airplane (nose along +x). Left/right differ: one engine pod on the right
    wing, a fuel tank on the left wing tip, a swept right wing."""
    E, B = "ellipsoid", "box"
    return (
        Part(E, (0.0, 0.0, 0.28), (1.0, 0.15, 0.15), 0.85),  # fuselage
        Part(E, (0.45, 0.0, 0.40), (0.25, 0.10, 0.09), 0.35),  # dark canopy
        Part(E, (0.05, 0.45, 0.26), (0.26, 0.50, 0.035), 0.75, yaw=8),  # left wing
        Part(E, (-0.02, -0.45, 0.26), (0.26, 0.52, 0.035), 0.75, yaw=-22),  # right wing, swept
        Part(E, (0.12, -0.48, 0.16), (0.24, 0.07, 0.07), 0.55),  # engine pod (right only)
        Part(E, (0.08, 0.92, 0.26), (0.14, 0.05, 0.05), 0.45),  # tip tank (left only)
        Part(E, (-0.86, 0.0, 0.32), (0.14, 0.40, 0.025), 0.75),  # tail plane
        Part(E, (-0.84, 0.0, 0.52), (0.20, 0.025, 0.24), 0.65, pitch=-20),  # fin
        Part(B, (0.0, 0.0, 0.07), (0.06, 0.06, 0.07), 0.3),  # stand
    )


def _truck():
    """A toy truck (cab at +x), a different object for testing external data: a
    ladder of boxes on the left side and an exhaust stack on the right break symmetry."""
    E, B = "ellipsoid", "box"
    parts = [
        Part(B, (0.62, 0.0, 0.42), (0.24, 0.32, 0.26), 0.8),  # cab
        Part(B, (0.88, 0.0, 0.30), (0.04, 0.30, 0.14), 0.4),  # bumper / grille
        Part(B, (-0.28, 0.0, 0.52), (0.62, 0.36, 0.36), 0.65),  # cargo box
        Part(B, (0.70, -0.36, 0.62), (0.04, 0.04, 0.26), 0.3),  # exhaust stack (right)
        Part(B, (-0.60, 0.39, 0.52), (0.05, 0.03, 0.30), 0.95),  # ladder (left)
        Part(B, (0.62, 0.0, 0.72), (0.10, 0.22, 0.05), 0.45),  # roof light bar
    ]
    for x in (0.6, -0.2, -0.6):
        for y in (0.3, -0.3):
            parts.append(Part(E, (x, y, 0.15), (0.15, 0.07, 0.15), 0.25))  # wheels
    return tuple(parts)


OBJECTS = {"airplane": _airplane, "truck": _truck}


@dataclass(frozen=True)
class Light:
    """A directional light at room azimuth/elevation (degrees) with an intensity."""

    azimuth: float
    elevation: float
    intensity: float

    def direction(self) -> Array:
        a, e = math.radians(self.azimuth), math.radians(self.elevation)
        return np.array([math.cos(e) * math.cos(a), math.cos(e) * math.sin(a), math.sin(e)])


#: Six lighting conditions, fixed in the room: (ambient, lights). They differ in
#: direction, number of lights and overall brightness, as NORB's do.
LIGHTINGS = (
    (0.15, (Light(150, 55, 0.95),)),
    (0.10, (Light(20, 25, 1.00),)),
    (0.30, (Light(-90, 70, 0.45),)),
    (0.10, (Light(100, 35, 0.60), Light(-60, 40, 0.60))),
    (0.25, (Light(0, 85, 1.10),)),
    (0.05, (Light(-150, 20, 0.85),)),
)
GROUND_ALBEDO = 0.5
CAMERA_AZIMUTH = -90.0  # the camera looks from -y towards the turntable
VIEW_HALF_WIDTH = 1.25  # half the width of the orthographic view, in object units


def _hit_part(part, rot, origin, direction):
    """Ray parameter t of the first hit (inf if none) and the world normal there."""
    o = (origin - np.asarray(part.center)) @ rot  # into the part's frame (rot^T x)
    d = direction @ rot
    size = np.asarray(part.size, dtype=np.float64)
    o, d = o / size, d / size
    n_rays = o.shape[0]
    if part.kind == "ellipsoid":
        a = np.einsum("ij,ij->i", d, d)
        b = np.einsum("ij,ij->i", o, d)
        c = np.einsum("ij,ij->i", o, o) - 1.0
        disc = b * b - a * c
        ok = disc > 0
        root = np.sqrt(np.where(ok, disc, 0.0))
        t = np.where(ok, (-b - root) / a, np.inf)
        t = np.where(t > 1e-9, t, np.inf)  # rays start outside every part
        local_normal = (o + np.where(np.isfinite(t), t, 0.0)[:, None] * d) / size
    else:
        with np.errstate(divide="ignore", invalid="ignore"):
            inv = 1.0 / d
            t1, t2 = (-1.0 - o) * inv, (1.0 - o) * inv
        t1 = np.where(np.isnan(t1), -np.inf, t1)
        t2 = np.where(np.isnan(t2), np.inf, t2)
        lo, hi = np.minimum(t1, t2), np.maximum(t1, t2)
        axis = np.argmax(lo, axis=1)
        t_near, t_far = lo.max(axis=1), hi.min(axis=1)
        ok = (t_near <= t_far) & (t_far > 1e-6)
        t = np.where(ok, np.maximum(t_near, 1e-6), np.inf)
        local_normal = np.zeros((n_rays, 3))
        local_normal[np.arange(n_rays), axis] = -np.sign(d[np.arange(n_rays), axis])
        local_normal /= size
    normal = local_normal @ rot.T
    normal /= np.linalg.norm(normal, axis=1, keepdims=True) + 1e-12
    return t, normal


def _first_hits(parts, rots, origin, direction):
    """(t, normal, albedo) of the nearest part along each ray (t = inf where none)."""
    best_t = np.full(origin.shape[0], np.inf)
    normal = np.zeros_like(origin)
    albedo = np.zeros(origin.shape[0])
    for part, rot in zip(parts, rots):
        t, n = _hit_part(part, rot, origin, direction)
        closer = t < best_t
        best_t[closer] = t[closer]
        normal[closer] = n[closer]
        albedo[closer] = part.albedo
    return best_t, normal, albedo


def _occluded(parts, rots, origin, direction):
    """True where a ray from ``origin`` along ``direction`` hits a part."""
    blocked = np.zeros(origin.shape[0], dtype=bool)
    for part, rot in zip(parts, rots):
        blocked |= np.isfinite(_hit_part(part, rot, origin, direction)[0])
    return blocked


def _camera_rays(elevation, size, supersample):
    """Origins (far in front) and the common direction of an orthographic camera."""
    e, a = math.radians(elevation), math.radians(CAMERA_AZIMUTH)
    back = np.array([math.cos(e) * math.cos(a), math.cos(e) * math.sin(a), math.sin(e)])
    forward = -back
    right = np.cross(forward, [0.0, 0.0, 1.0])
    right /= np.linalg.norm(right)
    up = np.cross(right, forward)
    n = size * supersample
    coords = (np.arange(n) + 0.5) / n * 2 - 1  # pixel centres in [-1, 1]
    v, u = np.meshgrid(-coords, coords, indexing="ij")  # row 0 at the top
    target = np.array([0.0, 0.0, 0.3])  # aim a little above the table
    plane = (u.reshape(-1, 1) * right + v.reshape(-1, 1) * up) * VIEW_HALF_WIDTH
    origin = target + 5.0 * back + plane
    return origin, np.broadcast_to(forward, origin.shape).copy()


def _turn(parts, azimuth):
    """The parts turned by the turntable azimuth (degrees, about the vertical axis)."""
    a = math.radians(azimuth)
    c, s = math.cos(a), math.sin(a)
    turned = []
    for p in parts:
        x, y, z = p.center
        turned.append(Part(p.kind, (c * x - s * y, s * x + c * y, z), p.size, p.albedo, p.yaw + azimuth, p.pitch))
    return turned


def render_views(obj: Any, azimuth: Any, elevation: Any, size: int = 32, supersample: int = 2,
                 lightings: Any = LIGHTINGS) -> Array:
    """Render one pose under every lighting: float array (n_lightings, size, size) in [0, 1].

    ``obj`` is a name in :data:`OBJECTS` or a sequence of :class:`Part`.
    """
    parts = OBJECTS[obj]() if isinstance(obj, str) else tuple(obj)
    parts = _turn(parts, azimuth)
    rots = [p.rotation() for p in parts]
    origin, direction = _camera_rays(elevation, size, supersample)

    t, normal, albedo = _first_hits(parts, rots, origin, direction)
    on_object = np.isfinite(t)
    t_ground = -origin[:, 2] / direction[:, 2]  # the camera looks down: the table is always hit
    t = np.where(on_object, t, t_ground)
    normal[~on_object] = (0.0, 0.0, 1.0)
    albedo[~on_object] = GROUND_ALBEDO
    point = origin + t[:, None] * direction + 1e-4 * normal

    shadow_cache = {}
    images = []
    for ambient, lights in lightings:
        radiance = np.full(t.shape, float(ambient))
        for light in lights:
            key = (light.azimuth, light.elevation)
            ldir = light.direction()
            if key not in shadow_cache:
                shadow_cache[key] = _occluded(parts, rots, point, np.broadcast_to(ldir, point.shape))
            lit = np.maximum(normal @ ldir, 0.0) * ~shadow_cache[key]
            radiance += light.intensity * lit
        value = np.clip(albedo * radiance, 0.0, 1.0) ** (1 / 2.2)
        n = size * supersample
        value = value.reshape(size, supersample, size, supersample).mean(axis=(1, 3)) if supersample > 1 else value.reshape(n, n)
        images.append(value)
    return np.stack(images)
