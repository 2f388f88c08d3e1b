"""Call legs: the model Twilio's webhooks describe, and the rules that fold them."""
