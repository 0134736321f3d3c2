//! Playing a `wait:` step.

use rand::RngExt;
use tokio::time::sleep;

use super::WaitStep;
use crate::{
    outcome::Failure,
    steps::{Ctx, Done, Final},
};

pub(super) async fn run(w: &WaitStep, ctx: &mut Ctx<'_>) -> Result<Done, Failure> {
    let d = match (w.fixed, w.min, w.max) {
        (Some(f), _, _) => f.get(),
        (None, Some(a), Some(b)) if b > a => ctx.rng.random_range(a.get()..=b.get()),
        (None, Some(a), _) => a.get(),
        _ => unreachable!("validated at load"),
    };
    sleep(d).await;
    Ok(Done::ok(Final { text: format!("waited {} ms", d.as_millis()), ..Final::default() }))
}
