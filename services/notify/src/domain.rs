//! Rules for a notification request: no I/O.

use commerce::{
    contracts::notify::{CreateNotification, MAX_MESSAGE_CHARS as MAX_MESSAGE_LEN},
    values::{FieldError, check_text},
};

/// Checks a delivery request; the errors name each invalid field.
pub fn validate(request: &CreateNotification) -> Result<(), Vec<FieldError>> {
    let mut errors = Vec::new();
    if request.order_id.is_nil() {
        errors.push(FieldError::new("order_id", "must not be the nil UUID"));
    }
    if request.message.trim().is_empty() {
        errors.push(FieldError::new("message", "must not be empty"));
    }
    if let Err(message) = check_text(&request.message, MAX_MESSAGE_LEN) {
        errors.push(FieldError::new("message", message));
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

    #[test]
    fn rejects_nul_and_other_control_characters() {
        for bad in ["a\0b", "line\nbreak", "\u{1b}[31mred", "tab\there"] {
            assert_eq!(
                validate(&request(bad)).unwrap_err()[0].field,
                "message",
                "{bad:?}"
            );
        }
    }
}
