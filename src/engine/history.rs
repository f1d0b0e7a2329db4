//! Clicks as a chain of refinements, for engines whose answer to a click depends on the
//! answer before it (the previous mask as a prior).
//!
//! The contract sends every dot on each call, green and red in separate lists, so the
//! chain is rebuilt from what was already answered: the longest answered prompt whose
//! green and red lists both begin the new ones is the parent, and the dots after it are
//! added one at a time (greens first). Undo and repeats are answered from the history.

use std::collections::VecDeque;
use std::sync::Arc;

use super::{Dot, Prompt};

/// The dot a step adds to its parent's prompt.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Click {
    pub dot: Dot,
    /// Green (include) when true, red (exclude) when false.
    pub include: bool,
}

/// The answered prompts of one image, most recent last, at most `keep` of them.
pub struct PromptHistory<S> {
    answered: VecDeque<(Prompt, Arc<S>)>,
    keep: usize,
}

impl<S> PromptHistory<S> {
    /// A history that remembers the last `keep` answers (at least one).
    pub fn new(keep: usize) -> Self {
        PromptHistory {
            answered: VecDeque::new(),
            keep: keep.max(1),
        }
    }

    /// The answer to `prompt`. `step(prompt_so_far, click, parent)` answers one click:
    /// `prompt_so_far` already holds `click`, `parent` is the answer without it (none for
    /// the first dot). An empty prompt has no answer: `None` (callers refuse it first).
    pub fn answer<E>(
        &mut self,
        prompt: &Prompt,
        mut step: impl FnMut(&Prompt, Click, Option<&S>) -> Result<S, E>,
    ) -> Option<Result<Arc<S>, E>> {
        if prompt.is_empty() {
            return None;
        }
        if let Some(found) = self.lookup(prompt) {
            return Some(Ok(found));
        }
        let parent = self
            .answered
            .iter()
            .filter(|(p, _)| prompt.green.starts_with(&p.green) && prompt.red.starts_with(&p.red))
            .max_by_key(|(p, _)| p.green.len() + p.red.len())
            .map(|(p, s)| (p.clone(), s.clone()));
        let (mut partial, mut previous) = match parent {
            Some((p, s)) => (p, Some(s)),
            None => (Prompt::default(), None),
        };
        let missing_green = prompt.green[partial.green.len()..]
            .iter()
            .map(|&dot| Click { dot, include: true });
        let missing_red = prompt.red[partial.red.len()..].iter().map(|&dot| Click {
            dot,
            include: false,
        });
        let missing: Vec<Click> = missing_green.chain(missing_red).collect();
        for click in missing {
            if click.include {
                partial.green.push(click.dot);
            } else {
                partial.red.push(click.dot);
            }
            let answer = match step(&partial, click, previous.as_deref()) {
                Ok(s) => Arc::new(s),
                Err(e) => return Some(Err(e)),
            };
            self.remember(partial.clone(), answer.clone());
            previous = Some(answer);
        }
        previous.map(Ok)
    }

    /// The stored answer to exactly `prompt`, marked as most recently used.
    pub fn lookup(&mut self, prompt: &Prompt) -> Option<Arc<S>> {
        let i = self.answered.iter().position(|(p, _)| p == prompt)?;
        let entry = self.answered.remove(i)?;
        let found = entry.1.clone();
        self.answered.push_back(entry);
        Some(found)
    }

    /// Stores `answer` for `prompt`, replacing an earlier answer to the same prompt (the
    /// user chose another candidate): later clicks refine the new one. Answers that were
    /// built on the old one (its prompt plus more dots, e.g. before an undo) go with it.
    pub fn replace(&mut self, prompt: &Prompt, answer: S) {
        self.answered.retain(|(p, _)| {
            !(p.green.starts_with(&prompt.green) && p.red.starts_with(&prompt.red))
        });
        self.remember(prompt.clone(), Arc::new(answer));
    }

    fn remember(&mut self, prompt: Prompt, answer: Arc<S>) {
        while self.answered.len() >= self.keep {
            self.answered.pop_front();
        }
        self.answered.push_back((prompt, answer));
    }

    /// The stored answers, for memory accounting.
    pub fn answers(&self) -> impl Iterator<Item = (&Prompt, &S)> {
        self.answered.iter().map(|(p, s)| (p, s.as_ref()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt(green: &[f64], red: &[f64]) -> Prompt {
        Prompt {
            green: green.iter().map(|&x| Dot::new(x, 0.0)).collect(),
            red: red.iter().map(|&x| Dot::new(x, 0.0)).collect(),
        }
    }

    /// A step that records which clicks it answered on top of which parent.
    fn trace(
        calls: &mut Vec<String>,
    ) -> impl FnMut(&Prompt, Click, Option<&String>) -> Result<String, ()> + '_ {
        |_, click, parent| {
            let s = format!(
                "{}{}{}",
                parent.map_or("", |p| p.as_str()),
                if click.include { "+" } else { "-" },
                click.dot.x
            );
            calls.push(s.clone());
            Ok(s)
        }
    }

    #[test]
    fn each_click_refines_the_answer_before_it_and_repeats_are_not_recomputed() {
        let mut history = PromptHistory::new(8);
        let mut calls = Vec::new();
        let a = history.answer(&prompt(&[1.0], &[]), trace(&mut calls));
        assert_eq!(a.unwrap().unwrap().as_str(), "+1");
        let b = history.answer(&prompt(&[1.0], &[2.0]), trace(&mut calls));
        assert_eq!(b.unwrap().unwrap().as_str(), "+1-2");
        // Undo, then the same prompt again: answered from the history.
        let again = history.answer(&prompt(&[1.0], &[]), trace(&mut calls));
        assert_eq!(again.unwrap().unwrap().as_str(), "+1");
        assert_eq!(calls, ["+1", "+1-2"]);
    }

    #[test]
    fn an_unknown_prompt_is_rebuilt_click_by_click_greens_first() {
        let mut history = PromptHistory::new(8);
        let mut calls = Vec::new();
        let a = history.answer(&prompt(&[1.0, 3.0], &[2.0]), trace(&mut calls));
        assert_eq!(a.unwrap().unwrap().as_str(), "+1+3-2");
        assert_eq!(calls, ["+1", "+1+3", "+1+3-2"]);
        assert!(
            history
                .answer(&prompt(&[], &[]), trace(&mut calls))
                .is_none()
        );
    }

    #[test]
    fn a_replaced_answer_is_what_later_clicks_refine_and_old_ones_age_out() {
        let mut history = PromptHistory::new(2);
        let mut calls = Vec::new();
        let first = prompt(&[1.0], &[]);
        let _ = history.answer(&first, trace(&mut calls));
        history.replace(&first, "chosen".to_string());
        let b = history.answer(&prompt(&[1.0, 5.0], &[]), trace(&mut calls));
        assert_eq!(b.unwrap().unwrap().as_str(), "chosen+5");
        // Undo to the first dot, choose again: the answer built on the old choice goes.
        history.replace(&first, "again".to_string());
        let c = history.answer(&prompt(&[1.0, 5.0], &[]), trace(&mut calls));
        assert_eq!(c.unwrap().unwrap().as_str(), "again+5");
        let _ = history.answer(&prompt(&[7.0], &[]), trace(&mut calls));
        // Only two answers are kept: the replaced first one is gone.
        assert!(history.lookup(&first).is_none());
        assert_eq!(history.answers().count(), 2);
    }
}
