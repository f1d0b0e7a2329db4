//! The dots on the image and their undo/redo history (one part of the [`super::document`]).
//!
//! Every change stores a snapshot of the whole dot list: lists are short (tens of dots), so
//! snapshots are cheaper to get right than inverse operations, and the prompt the engine
//! gets is always exactly the list on screen.

use crate::engine::{Dot, Prompt};

/// Include (green, left click) or exclude (red, right click).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DotKind {
    Green,
    Red,
}

/// A dot at an image pixel (the pixel's column and row).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PlacedDot {
    pub kind: DotKind,
    pub x: u32,
    pub y: u32,
}

/// The dots and the history of their changes. Each change says whether it changed
/// anything; a change that does not (removing a dot that is not there) is not recorded.
#[derive(Debug, Default, Clone)]
pub struct DotHistory {
    dots: Vec<PlacedDot>,
    undo: Vec<Vec<PlacedDot>>,
    redo: Vec<Vec<PlacedDot>>,
}

impl DotHistory {
    pub fn dots(&self) -> &[PlacedDot] {
        &self.dots
    }

    pub fn can_undo(&self) -> bool {
        !self.undo.is_empty()
    }

    pub fn can_redo(&self) -> bool {
        !self.redo.is_empty()
    }

    /// Records the current list before a change; a new change ends the redo branch.
    fn checkpoint(&mut self) {
        self.undo.push(self.dots.clone());
        self.redo.clear();
    }

    pub fn add(&mut self, dot: PlacedDot) {
        self.checkpoint();
        self.dots.push(dot);
    }

    /// Adds several dots as one undoable step (a stroke); nothing to add changes nothing.
    pub fn add_all(&mut self, dots: &[PlacedDot]) -> bool {
        if dots.is_empty() {
            return false;
        }
        self.checkpoint();
        self.dots.extend_from_slice(dots);
        true
    }

    pub fn remove(&mut self, index: usize) -> bool {
        if index >= self.dots.len() {
            return false;
        }
        self.checkpoint();
        self.dots.remove(index);
        true
    }

    pub fn clear(&mut self) -> bool {
        if self.dots.is_empty() {
            return false;
        }
        self.checkpoint();
        self.dots.clear();
        true
    }

    /// Moves a dot to pixel `to` as one undoable step; moving it onto itself changes nothing.
    pub fn move_dot(&mut self, index: usize, to: [u32; 2]) -> bool {
        match self.dots.get(index) {
            Some(d) if [d.x, d.y] != to => {
                self.checkpoint();
                self.dots[index].x = to[0];
                self.dots[index].y = to[1];
                true
            }
            _ => false,
        }
    }

    pub fn undo(&mut self) -> bool {
        match self.undo.pop() {
            Some(prev) => {
                self.redo.push(std::mem::replace(&mut self.dots, prev));
                true
            }
            None => false,
        }
    }

    pub fn redo(&mut self) -> bool {
        match self.redo.pop() {
            Some(next) => {
                self.undo.push(std::mem::replace(&mut self.dots, next));
                true
            }
            None => false,
        }
    }

    /// Every dot, as the engine contract wants them: the pixel's column and row.
    pub fn prompt(&self) -> Prompt {
        let mut p = Prompt::default();
        for d in &self.dots {
            let dot = Dot::new(d.x as f64, d.y as f64);
            match d.kind {
                DotKind::Green => p.green.push(dot),
                DotKind::Red => p.red.push(dot),
            }
        }
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(x: u32, y: u32) -> PlacedDot {
        PlacedDot {
            kind: DotKind::Green,
            x,
            y,
        }
    }

    #[test]
    fn every_change_is_undoable_and_a_new_change_ends_the_redo_branch() {
        let mut h = DotHistory::default();
        h.add(g(1, 1));
        h.add(PlacedDot {
            kind: DotKind::Red,
            x: 5,
            y: 5,
        });
        assert!(h.move_dot(0, [2, 3]));
        assert!(h.remove(1));
        assert!(h.clear());
        assert!(h.dots().is_empty());
        assert!(h.undo());
        assert_eq!(h.dots(), &[g(2, 3)]);
        assert!(h.undo());
        assert_eq!(h.dots().len(), 2);
        assert!(h.undo());
        assert_eq!(h.dots()[0], g(1, 1));
        assert!(h.redo());
        assert_eq!(h.dots()[0], g(2, 3));
        // A new change drops the redo branch.
        h.add(g(9, 9));
        assert!(!h.redo());
        assert_eq!(h.prompt().green.len(), 2);
        assert_eq!(h.prompt().red.len(), 1);
    }

    #[test]
    fn changes_that_change_nothing_are_not_recorded() {
        let mut h = DotHistory::default();
        assert!(!h.clear());
        assert!(!h.remove(0));
        h.add(g(1, 1));
        assert!(!h.move_dot(0, [1, 1]));
        assert!(h.undo());
        assert!(!h.undo());
    }

    #[test]
    fn a_stroke_is_one_step() {
        let mut h = DotHistory::default();
        h.add(g(1, 1));
        assert!(!h.add_all(&[]));
        assert!(h.add_all(&[g(2, 2), g(3, 3), g(4, 4)]));
        assert_eq!(h.dots().len(), 4);
        assert!(h.undo());
        assert_eq!(h.dots(), &[g(1, 1)]);
        assert!(h.redo());
        assert_eq!(h.dots().len(), 4);
    }
}
