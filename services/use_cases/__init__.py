"""What callrelay does when asked: record a status, notify a leg, reconcile with Twilio."""
