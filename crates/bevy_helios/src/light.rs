//! [`HeliosLight`]: a light (and optionally an emissive material) tinted by a stream's frames.

use bevy::prelude::*;

use crate::screen::HeliosStream;

/// Drives the colour and intensity of the `PointLight` / `SpotLight` on the same entity from the
/// mean colour of a region of another entity's [`HeliosScreen`](crate::HeliosScreen) frames,
/// smoothed over time.
#[derive(Component, Clone, Debug, Reflect)]
#[reflect(Component)]
#[require(HeliosLightState)]
pub struct HeliosLight {
    /// The entity with the `HeliosScreen`.
    pub source: Entity,
    /// Normalised region of the frame (0..1, y down): `min` and `max` corners.
    pub region: Rect,
    /// Intensity at full white (lumens for point and spot lights).
    pub max_intensity: f32,
    /// Smoothing time constant in seconds (0 = follow each frame).
    pub smoothing_secs: f32,
    /// Also set this material's emissive colour (scaled by `emissive_scale`).
    pub emissive: Option<Handle<StandardMaterial>>,
    /// Emissive strength at full white.
    pub emissive_scale: f32,
}

impl HeliosLight {
    /// Follows the whole frame of `source`.
    pub fn new(source: Entity) -> Self {
        Self {
            source,
            region: Rect::new(0.0, 0.0, 1.0, 1.0),
            max_intensity: 200_000.0,
            smoothing_secs: 0.3,
            emissive: None,
            emissive_scale: 4.0,
        }
    }

    /// Follows only `region` of the frame.
    #[must_use]
    pub fn with_region(mut self, region: Rect) -> Self {
        self.region = region;
        self
    }

    /// Sets the intensity at full white.
    #[must_use]
    pub fn with_max_intensity(mut self, intensity: f32) -> Self {
        self.max_intensity = intensity;
        self
    }

    /// Also tints `material`'s emissive colour.
    #[must_use]
    pub fn with_emissive(mut self, material: Handle<StandardMaterial>) -> Self {
        self.emissive = Some(material);
        self
    }
}

/// The smoothed colour a [`HeliosLight`] currently applies (linear RGB).
#[derive(Component, Clone, Debug, Default, Reflect)]
#[reflect(Component)]
pub struct HeliosLightState {
    /// Smoothed linear RGB of the region.
    pub color: Vec3,
    /// Whether a frame has been seen yet.
    pub primed: bool,
}

/// Exponential smoothing factor for a step of `dt` seconds with time constant `tau`.
pub fn smoothing_alpha(dt: f32, tau: f32) -> f32 {
    if tau <= 0.0 {
        1.0
    } else {
        1.0 - (-dt / tau).exp()
    }
}

/// Updates lights from the frames on screen (runs in [`HeliosSystems::Upload`](crate::HeliosSystems)).
pub fn drive_lights(
    time: Res<Time>,
    streams: Query<&HeliosStream>,
    mut lights: Query<(
        &HeliosLight,
        &mut HeliosLightState,
        Option<&mut PointLight>,
        Option<&mut SpotLight>,
    )>,
    mut materials: Option<ResMut<Assets<StandardMaterial>>>,
) {
    let dt = time.delta_secs();
    for (light, mut state, point, spot) in &mut lights {
        let Some(stats) = streams.get(light.source).ok().and_then(|s| s.frame_stats) else {
            continue;
        };
        let r = light.region;
        let mean = stats.region_mean(r.min.x, r.min.y, r.max.x, r.max.y);
        let target = Color::srgb(mean[0], mean[1], mean[2]).to_linear();
        let target = Vec3::new(target.red, target.green, target.blue);
        let alpha = if state.primed {
            smoothing_alpha(dt, light.smoothing_secs)
        } else {
            1.0
        };
        state.color = state.color.lerp(target, alpha);
        state.primed = true;
        let peak = state.color.max_element().max(1e-4);
        let color = Color::linear_rgb(
            state.color.x / peak,
            state.color.y / peak,
            state.color.z / peak,
        );
        let luminance = state.color.dot(Vec3::new(0.2126, 0.7152, 0.0722));
        let intensity = light.max_intensity * luminance;
        if let Some(mut p) = point {
            p.color = color;
            p.intensity = intensity;
        }
        if let Some(mut s) = spot {
            s.color = color;
            s.intensity = intensity;
        }
        if let (Some(handle), Some(materials)) = (&light.emissive, materials.as_deref_mut())
            && let Some(mut m) = materials.get_mut(handle)
        {
            let c = state.color * light.emissive_scale;
            m.emissive = LinearRgba::rgb(c.x, c.y, c.z);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing() {
        assert_eq!(smoothing_alpha(0.1, 0.0), 1.0);
        let a = smoothing_alpha(0.1, 0.1);
        assert!((a - (1.0 - (-1.0f32).exp())).abs() < 1e-6);
        // Ten steps of 0.1 s with tau 1 s approach 1 - e^-1 of the target.
        let mut v = 0.0f32;
        for _ in 0..10 {
            v += (1.0 - v) * smoothing_alpha(0.1, 1.0);
        }
        assert!((v - (1.0 - (-1.0f32).exp())).abs() < 1e-4);
    }
}
