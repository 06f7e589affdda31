//! Rules for a notification request: no I/O.

use commerce::contracts::notify::CreateNotification;
use platform::FieldError;

/// Longest message kept.
pub const MAX_MESSAGE_LEN: usize = 1_000;

/// Checks a delivery request; the errors name each invalid field.
pub fn validate(request: &CreateNotification) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    if request.order_id.is_nil() {
        errors.push(FieldError::new("order_id", "must not be the nil UUID"));
    }
    if request.message.trim().is_empty() {
        errors.push(FieldError::new("message", "must not be empty"));
    }
    if request.message.chars().count() > MAX_MESSAGE_LEN {
        errors.push(FieldError::new(
            "message",
            format!("must be at most {MAX_MESSAGE_LEN} characters"),
        ));
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

#[cfg(test)]
mod tests {
    use commerce::contracts::notify::NotificationKind;
    use uuid::Uuid;

    use super::*;

    fn request(message: &str) -> CreateNotification {
        CreateNotification {
            order_id: Uuid::new_v4(),
            kind: NotificationKind::OrderConfirmed,
            message: message.into(),
        }
    }

    #[test]
    fn accepts_a_plain_message() {
        assert!(validate(&request("Your order is confirmed")).is_ok());
    }

    #[test]
    fn rejects_empty_and_oversized_messages() {
        assert_eq!(validate(&request("  ")).unwrap_err()[0].field, "message");
        assert!(validate(&request(&"x".repeat(MAX_MESSAGE_LEN + 1))).is_err());
    }
}
