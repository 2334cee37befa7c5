//! The retry policy of a handler and what to do after a failed attempt.
//!
//! The effective policy is the handler's manifest values, else the
//! service's, else the server defaults (Restate's: 500 ms, ×2, at most 60 s
//! between attempts, 70 attempts counting the first, then pause). When the
//! attempts are exhausted the invocation is paused (durably, until an
//! operator resumes it) or killed (it completes with the last failure).
//! An SDK may decide for itself: `ErrorMessage.behavior` PAUSE pauses at
//! once, FAIL completes with the error, and `next_retry_delay` sets the
//! delay of the next retry only.
//!
//! The count of failed attempts lives in the leader's retry loop, like
//! Restate's invoker keeps it in memory: a new leader or a resume starts
//! counting again.

use keel_partition::invocation::InvocationResult;
use keel_protocol::manifest::{Handler, OnMaxAttempts, Service};
use keel_protocol::proto::{ErrorBehavior, ErrorMessage};
use std::time::Duration;

/// The policy one invocation's attempts are retried with.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPolicy {
    /// Delay before the first retry.
    pub initial_interval: Duration,
    /// Growth of the delay from one retry to the next.
    pub exponentiation_factor: f64,
    /// Attempts (the first one included) before `on_max_attempts` applies;
    /// `None`: unlimited.
    pub max_attempts: Option<u32>,
    /// Upper bound of the delay; `None`: unbounded.
    pub max_interval: Option<Duration>,
    /// Pause or kill once the attempts are exhausted.
    pub on_max_attempts: OnMaxAttempts,
}

impl Default for RetryPolicy {
    /// Restate's server defaults.
    fn default() -> Self {
        RetryPolicy {
            initial_interval: Duration::from_millis(500),
            exponentiation_factor: 2.0,
            max_attempts: Some(70),
            max_interval: Some(Duration::from_secs(60)),
            on_max_attempts: OnMaxAttempts::Pause,
        }
    }
}

impl RetryPolicy {
    /// The effective policy of `handler` of `service`: handler values win
    /// over service values, which win over the defaults.
    pub fn of(service: &Service, handler: &Handler) -> Self {
        let (s, h) = (&service.options.retry_policy, &handler.options.retry_policy);
        let d = RetryPolicy::default();
        let ms = Duration::from_millis;
        RetryPolicy {
            initial_interval: h
                .retry_policy_initial_interval
                .or(s.retry_policy_initial_interval)
                .map_or(d.initial_interval, ms),
            exponentiation_factor: h
                .retry_policy_exponentiation_factor
                .or(s.retry_policy_exponentiation_factor)
                .unwrap_or(d.exponentiation_factor),
            // Zero attempts cannot be: the first one always runs.
            max_attempts: h
                .retry_policy_max_attempts
                .or(s.retry_policy_max_attempts)
                .map(|n| u32::try_from(n).unwrap_or(u32::MAX).max(1))
                .or(d.max_attempts),
            max_interval: h.retry_policy_max_interval.or(s.retry_policy_max_interval).map(ms).or(d.max_interval),
            on_max_attempts: h
                .retry_policy_on_max_attempts
                .or(s.retry_policy_on_max_attempts)
                .unwrap_or(d.on_max_attempts),
        }
    }

    /// The delay after the `failures`-th failed attempt (1-based):
    /// `initial · factor^(failures-1)`, capped by `max_interval`.
    pub fn delay(&self, failures: u32) -> Duration {
        let exponent = i32::try_from(failures.saturating_sub(1)).unwrap_or(i32::MAX);
        let secs = self.initial_interval.as_secs_f64() * self.exponentiation_factor.max(1.0).powi(exponent);
        let cap = self.max_interval.map_or(f64::MAX, |m| m.as_secs_f64());
        // A factor large enough to overflow is as long as the cap (or a day).
        Duration::try_from_secs_f64(secs.min(cap)).unwrap_or(self.max_interval.unwrap_or(Duration::from_secs(86_400)))
    }
}

/// Why an attempt failed, as far as the retry decision is concerned.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// HTTP-like code (the SDK's, else 500).
    pub code: u16,
    /// What went wrong.
    pub message: String,
    /// What the SDK asked for (RETRY when it said nothing, or for transport failures).
    pub behavior: ErrorBehavior,
    /// The SDK's delay for the next retry, overriding the policy once.
    pub next_retry_delay: Option<Duration>,
}

impl Failure {
    /// A failure of keel's side or the transport: retried per the policy.
    pub fn transient(message: impl Into<String>) -> Self {
        Failure { code: 500, message: message.into(), behavior: ErrorBehavior::Retry, next_retry_delay: None }
    }

    /// An entry too large to journal: retrying cannot help, so pause.
    pub fn too_large(message: impl Into<String>) -> Self {
        Failure { code: 413, message: message.into(), behavior: ErrorBehavior::Pause, next_retry_delay: None }
    }

    /// The failure an SDK reported with an `ErrorMessage`.
    pub fn from_sdk(error: &ErrorMessage) -> Self {
        Failure {
            code: u16::try_from(error.code).ok().filter(|c| *c >= 100).unwrap_or(500),
            message: error.message.clone(),
            behavior: error.behavior(),
            next_retry_delay: error.next_retry_delay.map(Duration::from_millis),
        }
    }
}

/// What follows a failed attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Start a new attempt after this delay.
    RetryAfter(Duration),
    /// Pause the invocation until an operator resumes it.
    Pause,
    /// Complete the invocation with this failure.
    Fail(InvocationResult),
}

/// Decides after the `failures`-th failed attempt (1-based) of an
/// invocation run with `policy`. An SDK-chosen delay is honoured even when
/// the attempts are exhausted, as Restate does: the SDK is retrying on its
/// own schedule (a `ctx.run` with its own policy).
pub fn decide(policy: &RetryPolicy, failures: u32, failure: &Failure) -> Decision {
    let fail = || Decision::Fail(InvocationResult::Failure { code: failure.code, message: failure.message.clone() });
    match failure.behavior {
        ErrorBehavior::Pause => return Decision::Pause,
        ErrorBehavior::Fail => return fail(),
        ErrorBehavior::Retry => {}
    }
    if let Some(delay) = failure.next_retry_delay {
        return Decision::RetryAfter(delay);
    }
    if policy.max_attempts.is_some_and(|max| failures >= max) {
        return match policy.on_max_attempts {
            OnMaxAttempts::Pause => Decision::Pause,
            OnMaxAttempts::Kill => fail(),
        };
    }
    Decision::RetryAfter(policy.delay(failures))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(max_attempts: Option<u32>, on_max_attempts: OnMaxAttempts) -> RetryPolicy {
        RetryPolicy { max_attempts, on_max_attempts, ..RetryPolicy::default() }
    }

    #[test]
    fn delays_grow_by_the_factor_up_to_the_cap() {
        let p = RetryPolicy::default();
        let delays: Vec<u64> = [1, 2, 3, 7, 8, 100, u32::MAX].iter().map(|f| p.delay(*f).as_millis() as u64).collect();
        assert_eq!(delays, [500, 1000, 2000, 32_000, 60_000, 60_000, 60_000]);
        let unbounded = RetryPolicy { max_interval: None, exponentiation_factor: 10.0, ..p };
        assert_eq!(unbounded.delay(3), Duration::from_secs(50));
        assert_eq!(unbounded.delay(u32::MAX), Duration::from_secs(86_400));
    }

    #[test]
    fn exhausted_attempts_pause_or_kill_with_the_last_failure() {
        let failure = Failure { code: 503, ..Failure::transient("down") };
        let pause = policy(Some(3), OnMaxAttempts::Pause);
        assert_eq!(decide(&pause, 1, &failure), Decision::RetryAfter(Duration::from_millis(500)));
        assert_eq!(decide(&pause, 2, &failure), Decision::RetryAfter(Duration::from_millis(1000)));
        assert_eq!(decide(&pause, 3, &failure), Decision::Pause);
        let kill = policy(Some(3), OnMaxAttempts::Kill);
        let killed = InvocationResult::Failure { code: 503, message: "down".into() };
        assert_eq!(decide(&kill, 3, &failure), Decision::Fail(killed));
        assert!(matches!(decide(&policy(None, OnMaxAttempts::Kill), 1000, &failure), Decision::RetryAfter(_)));
    }

    #[test]
    fn the_sdk_may_pause_fail_or_choose_the_delay() {
        let p = policy(Some(2), OnMaxAttempts::Kill);
        let error = |behavior: ErrorBehavior, next_retry_delay: Option<u64>| ErrorMessage {
            code: 0,
            message: "m".into(),
            behavior: behavior as i32,
            next_retry_delay,
            ..ErrorMessage::default()
        };
        assert_eq!(decide(&p, 1, &Failure::from_sdk(&error(ErrorBehavior::Pause, None))), Decision::Pause);
        let failed = Decision::Fail(InvocationResult::Failure { code: 500, message: "m".into() });
        assert_eq!(decide(&p, 1, &Failure::from_sdk(&error(ErrorBehavior::Fail, None))), failed);
        let delayed = Failure::from_sdk(&error(ErrorBehavior::Retry, Some(7)));
        assert_eq!(decide(&p, 5, &delayed), Decision::RetryAfter(Duration::from_millis(7)));
    }

    #[test]
    fn handler_values_win_over_service_values_over_defaults() {
        let manifest: keel_protocol::EndpointManifest = serde_json::from_value(serde_json::json!({
            "protocolMode": "BIDI_STREAM", "minProtocolVersion": 5, "maxProtocolVersion": 7,
            "services": [{
                "name": "S", "ty": "SERVICE", "retryPolicyMaxAttempts": 5, "retryPolicyInitialInterval": 10,
                "handlers": [
                    {"name": "h", "retryPolicyMaxAttempts": 0, "retryPolicyOnMaxAttempts": "KILL"},
                    {"name": "plain"}
                ]
            }]
        }))
        .expect("manifest");
        let s = &manifest.services[0];
        let h = RetryPolicy::of(s, &s.handlers[0]);
        assert_eq!(
            (h.max_attempts, h.on_max_attempts, h.initial_interval),
            (Some(1), OnMaxAttempts::Kill, Duration::from_millis(10))
        );
        let plain = RetryPolicy::of(s, &s.handlers[1]);
        let expected = RetryPolicy {
            max_attempts: Some(5),
            initial_interval: Duration::from_millis(10),
            ..RetryPolicy::default()
        };
        assert_eq!(plain, expected);
    }
}
