"""The reference chat delivery service: invitations from Kafka to the site's widget, the
snippet ``beckon.js`` and the demo shop."""
