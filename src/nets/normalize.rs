//! Input normalisation of the networks: images in `[0, 1]` minus a per-channel mean,
//! divided by a per-channel standard deviation, before the backbone.

/// ImageNet's per-channel (R, G, B) mean, as torchvision's pretrained weights expect.
pub const IMAGENET_MEAN: [f64; 3] = [0.485, 0.456, 0.406];
/// ImageNet's per-channel (R, G, B) standard deviation.
pub const IMAGENET_STD: [f64; 3] = [0.229, 0.224, 0.225];

/// How a network normalises its input.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Normalize {
    /// [`Normalize::ImageNet`] for the RGB backbones (the ResNets),
    /// [`Normalize::Legacy`] for the grayscale `"convnet"`.
    Auto,
    /// ImageNet's per-channel mean and std for 3 channels; for other channel counts
    /// (grayscale) the mean of the three means (0.449) and of the three stds (0.226).
    ImageNet,
    /// The single scalar of gridmatch before per-channel normalisation: mean 0.5, std
    /// 0.25 for the convnet, mean 0.45, std 0.225 for the ResNets (what models saved
    /// without a `normalize` setting were trained with).
    Legacy,
    /// None: the `[0, 1]` values pass through.
    Off,
}

impl Normalize {
    /// The names [`Normalize::parse`] reads, in the order of the variants.
    pub const NAMES: [&'static str; 4] = ["auto", "imagenet", "legacy", "none"];

    /// The setting named `name` (one of [`Normalize::NAMES`]).
    pub fn parse(name: &str) -> Option<Normalize> {
        match name {
            "auto" => Some(Normalize::Auto),
            "imagenet" => Some(Normalize::ImageNet),
            "legacy" => Some(Normalize::Legacy),
            "none" => Some(Normalize::Off),
            _ => None,
        }
    }

    /// The name of the setting.
    pub fn name(self) -> &'static str {
        match self {
            Normalize::Auto => "auto",
            Normalize::ImageNet => "imagenet",
            Normalize::Legacy => "legacy",
            Normalize::Off => "none",
        }
    }

    /// Per-channel `(mean, std)` (`channels` values each) for `backbone`.
    pub fn mean_std(self, backbone: &str, channels: usize) -> (Vec<f64>, Vec<f64>) {
        let resolved = match self {
            Normalize::Auto if backbone == "convnet" => Normalize::Legacy,
            Normalize::Auto => Normalize::ImageNet,
            other => other,
        };
        let same = |m: f64, s: f64| (vec![m; channels], vec![s; channels]);
        match resolved {
            Normalize::ImageNet if channels == 3 => (IMAGENET_MEAN.to_vec(), IMAGENET_STD.to_vec()),
            Normalize::ImageNet => same(
                IMAGENET_MEAN.iter().sum::<f64>() / 3.0,
                IMAGENET_STD.iter().sum::<f64>() / 3.0,
            ),
            Normalize::Legacy if backbone == "convnet" => same(0.5, 0.25),
            Normalize::Legacy => same(0.45, 0.225),
            _ => same(0.0, 1.0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_values() {
        for name in Normalize::NAMES {
            assert_eq!(Normalize::parse(name).unwrap().name(), name);
        }
        assert_eq!(Normalize::parse("ImageNet"), None);
        let (m, s) = Normalize::Auto.mean_std("resnet18", 3);
        assert_eq!((m, s), (IMAGENET_MEAN.to_vec(), IMAGENET_STD.to_vec()));
        assert_eq!(
            Normalize::Auto.mean_std("convnet", 1),
            (vec![0.5], vec![0.25])
        );
        assert_eq!(
            Normalize::Legacy.mean_std("resnet50", 3),
            (vec![0.45; 3], vec![0.225; 3])
        );
        let (m, s) = Normalize::ImageNet.mean_std("convnet", 1);
        assert!((m[0] - 0.449).abs() < 1e-12 && (s[0] - 0.226).abs() < 1e-12);
        assert_eq!(
            Normalize::Off.mean_std("resnet18", 3),
            (vec![0.0; 3], vec![1.0; 3])
        );
    }
}
