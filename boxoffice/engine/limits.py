"""The limits of the contract, defined once."""

MAX_SEATS_PER_HOLD = 10
MAX_SEATS_PER_CUSTOMER = 10
MAX_WAITLIST_COUNT = 10
MAX_CUSTOMER_LENGTH = 254
MAX_IDEMPOTENCY_KEY_LENGTH = 200

# Seat plans (the admin API): the kinds and price categories a seat may have, and a hall's size.
SEAT_KINDS = ("standard", "wheelchair", "companion")
SEAT_CATEGORIES = ("standard", "premium", "vip")
MAX_HALL_SEATS = 5000
# A seat plan of MAX_HALL_SEATS seats fits with room to spare.
ADMIN_MAX_BODY_BYTES = 2 * 2**20
