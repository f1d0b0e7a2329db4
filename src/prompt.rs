//! What the user asked for: dots in the canonical pixel grid.
//!
//! A leaf module with no dependencies inside the crate, so both the engine contract and the
//! AI Cut wire format (the `wire` module) build on it without depending on each other.

use serde::{Deserialize, Serialize};

/// A point in image pixels, measured from the top-left corner of the oriented image.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Dot {
    pub x: f64,
    pub y: f64,
}

impl Dot {
    pub fn new(x: f64, y: f64) -> Self {
        Dot { x, y }
    }

    /// Inside an image of `width` x `height` pixels (the right and bottom edges excluded).
    pub fn is_inside(&self, width: u32, height: u32) -> bool {
        self.x.is_finite()
            && self.y.is_finite()
            && self.x >= 0.0
            && self.y >= 0.0
            && self.x < width as f64
            && self.y < height as f64
    }
}

/// Every dot placed so far. The contract always sends all of them, never a delta.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Prompt {
    pub green: Vec<Dot>,
    pub red: Vec<Dot>,
}

/// Why a prompt cannot be segmented; every engine and front door shares these rules.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PromptError {
    #[error("at least one green (include) dot is needed")]
    NoGreenDot,
    #[error("{kind} dot ({x}, {y}) is outside the {width}x{height} image")]
    DotOutside {
        kind: &'static str,
        x: f64,
        y: f64,
        width: u32,
        height: u32,
    },
}

impl Prompt {
    pub fn is_empty(&self) -> bool {
        self.green.is_empty() && self.red.is_empty()
    }

    /// Checks the rules every engine shares: at least one green dot, all dots inside.
    pub fn validate(&self, width: u32, height: u32) -> Result<(), PromptError> {
        if self.green.is_empty() {
            return Err(PromptError::NoGreenDot);
        }
        for (kind, dots) in [("green", &self.green), ("red", &self.red)] {
            if let Some(d) = dots.iter().find(|d| !d.is_inside(width, height)) {
                return Err(PromptError::DotOutside {
                    kind,
                    x: d.x,
                    y: d.y,
                    width,
                    height,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prompt_needs_a_green_dot_and_every_dot_inside_the_image() {
        let inside = Prompt {
            green: vec![Dot::new(0.0, 0.0), Dot::new(9.5, 4.9)],
            red: vec![],
        };
        assert_eq!(inside.validate(10, 5), Ok(()));
        assert_eq!(
            Prompt::default().validate(10, 5),
            Err(PromptError::NoGreenDot)
        );
        let red_on_the_edge = Prompt {
            red: vec![Dot::new(10.0, 2.0)],
            ..inside.clone()
        };
        assert!(matches!(
            red_on_the_edge.validate(10, 5),
            Err(PromptError::DotOutside { kind: "red", .. })
        ));
        let not_a_number = Prompt {
            green: vec![Dot::new(f64::NAN, 1.0)],
            red: vec![],
        };
        assert!(not_a_number.validate(10, 5).is_err());
    }
}
