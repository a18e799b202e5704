"""Reference lists the generator draws from: names, places, devices, plans and offers.

Small hand-written lists instead of a fake-data library: the generator must be
reproducible byte for byte, and a dependency's lists change between its releases.
Names are weighted towards the top of each list so common names repeat (many
"James Smith"s), which is what makes identity resolution hard in real data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

MALE_FIRST_NAMES: Final = (
    "James", "John", "David", "Michael", "Paul", "Andrew", "Mark", "Richard", "Robert",
    "Christopher", "Thomas", "William", "Daniel", "Stephen", "Peter", "Matthew", "Anthony",
    "Oliver", "George", "Harry", "Jack", "Jacob", "Noah", "Charlie", "Oscar", "Henry", "Leo",
    "Alfie", "Joshua", "Freddie", "Archie", "Ethan", "Isaac", "Alexander", "Joseph", "Edward",
    "Samuel", "Max", "Arthur", "Lucas", "Mohammed", "Logan", "Theo", "Harrison", "Benjamin",
    "Mason", "Sebastian", "Finley", "Adam", "Dylan", "Zachary", "Riley", "Gary", "Ian", "Kevin",
    "Simon", "Jonathan", "Nicholas", "Patrick", "Gareth", "Owen", "Rhys", "Callum", "Jamie",
    "Ryan", "Liam", "Connor", "Kieran", "Aaron", "Luke", "Nathan", "Ravi", "Arjun", "Omar",
    "Ali", "Tomasz", "Piotr", "Sean", "Declan", "Graham",
)  # fmt: skip

FEMALE_FIRST_NAMES: Final = (
    "Sarah", "Emma", "Laura", "Rebecca", "Claire", "Elizabeth", "Nicola", "Rachel", "Hannah",
    "Charlotte", "Jessica", "Olivia", "Amelia", "Isla", "Ava", "Emily", "Sophia", "Grace",
    "Mia", "Poppy", "Ella", "Lily", "Evie", "Isabella", "Sophie", "Ivy", "Freya", "Harper",
    "Willow", "Rosie", "Daisy", "Alice", "Florence", "Ruby", "Michelle", "Lisa", "Karen",
    "Susan", "Helen", "Catherine", "Margaret", "Victoria", "Katherine", "Jennifer", "Deborah",
    "Joanne", "Samantha", "Amanda", "Louise", "Natalie", "Chloe", "Megan", "Lauren", "Bethany",
    "Zoe", "Priya", "Aisha", "Fatima", "Anna", "Agnieszka", "Siobhan", "Niamh", "Gemma",
    "Kelly", "Abigail", "Patricia", "Rebekah", "Joanna", "Kirsty", "Leanne",
)  # fmt: skip

NICKNAMES: Final[dict[str, tuple[str, ...]]] = {
    "William": ("Bill", "Will", "Billy"),
    "Robert": ("Bob", "Rob", "Bobby"),
    "Richard": ("Rich", "Richie", "Dick"),
    "James": ("Jim", "Jimmy", "Jamie"),
    "John": ("Johnny", "Jack"),
    "Thomas": ("Tom", "Tommy"),
    "Michael": ("Mike", "Mick"),
    "Christopher": ("Chris",),
    "Stephen": ("Steve",),
    "Anthony": ("Tony",),
    "Matthew": ("Matt",),
    "Nicholas": ("Nick",),
    "Jonathan": ("Jon",),
    "Daniel": ("Dan", "Danny"),
    "Samuel": ("Sam",),
    "Joseph": ("Joe",),
    "Edward": ("Ed", "Ted", "Eddie"),
    "Alexander": ("Alex",),
    "Benjamin": ("Ben",),
    "Zachary": ("Zach",),
    "Andrew": ("Andy", "Drew"),
    "Peter": ("Pete",),
    "David": ("Dave",),
    "Patrick": ("Pat", "Paddy"),
    "Joshua": ("Josh",),
    "Harrison": ("Harry",),
    "Sebastian": ("Seb",),
    "Elizabeth": ("Liz", "Beth", "Lizzie"),
    "Catherine": ("Cathy", "Kate"),
    "Katherine": ("Kate", "Kathy"),
    "Margaret": ("Maggie", "Peggy"),
    "Victoria": ("Vicky", "Tori"),
    "Jennifer": ("Jen", "Jenny"),
    "Deborah": ("Debbie", "Deb"),
    "Samantha": ("Sam",),
    "Rebecca": ("Becky", "Becca"),
    "Jessica": ("Jess",),
    "Charlotte": ("Lottie", "Charlie"),
    "Isabella": ("Bella", "Izzy"),
    "Abigail": ("Abbie", "Abby"),
    "Patricia": ("Pat", "Trish"),
    "Susan": ("Sue",),
    "Amanda": ("Mandy",),
    "Nicola": ("Nicky",),
    "Natalie": ("Nat",),
    "Olivia": ("Liv",),
    "Florence": ("Flo",),
    "Michelle": ("Shelly",),
    "Joanne": ("Jo",),
    "Joanna": ("Jo",),
    "Gemma": ("Gem",),
}
"""Informal first names a person gives in a shop or on a form instead of the legal one."""

LAST_NAMES: Final = (
    "Smith", "Jones", "Williams", "Taylor", "Brown", "Davies", "Evans", "Wilson", "Thomas",
    "Johnson", "Roberts", "Robinson", "Thompson", "Wright", "Walker", "White", "Edwards",
    "Hughes", "Green", "Hall", "Lewis", "Harris", "Clarke", "Patel", "Jackson", "Wood",
    "Turner", "Martin", "Cooper", "Hill", "Ward", "Morris", "Moore", "Clark", "Lee", "King",
    "Baker", "Harrison", "Morgan", "Allen", "James", "Scott", "Phillips", "Watson", "Davis",
    "Parker", "Price", "Bennett", "Young", "Griffiths", "Mitchell", "Kelly", "Cook", "Carter",
    "Richardson", "Bailey", "Collins", "Bell", "Shaw", "Murphy", "Miller", "Cox", "Richards",
    "Khan", "Marshall", "Anderson", "Simpson", "Ellis", "Adams", "Singh", "Begum", "Wilkinson",
    "Foster", "Chapman", "Powell", "Webb", "Rogers", "Gray", "Mason", "Ali", "Hunt", "Hussain",
    "Campbell", "Matthews", "Owen", "Palmer", "Holmes", "Mills", "Barnes", "Knight", "Lloyd",
    "Butler", "Russell", "Barker", "Fisher", "Stevens", "Jenkins", "Murray", "Dixon", "Harvey",
    "Graham", "Pearson", "Ahmed", "Fletcher", "Walsh", "Kaur", "Gibson", "Howard", "Andrews",
    "Stewart", "Elliott", "Reynolds", "Saunders", "Payne", "Fox", "Ford", "Pearce", "Day",
    "Brooks", "West", "Lawrence", "Cole", "Atkinson", "Bradley", "Spencer", "Gill", "Dawson",
    "Ball", "Burton", "O'Brien", "Watts", "Rose", "Booth", "Perry", "Ryan", "Grant", "Wells",
    "Armstrong", "Francis", "Rees", "Hayes", "Hart", "Hudson", "Newman", "Barrett", "Webster",
    "Hunter", "Gregory", "Carr", "Lowe", "Page", "Marsh", "Riley", "Dunn", "Woods", "Parsons",
    "Berry", "Stone", "Reid", "Holland", "Hawkins", "Harding", "Porter", "Robertson", "Newton",
    "Oliver", "Reed", "Kennedy", "Williamson", "Bird", "Gardner", "Shah", "Dean", "Lane",
    "Cooke", "Bates", "Henderson", "Parry", "Burgess", "Bishop", "Walton", "Burns",
    "Nicholson", "Shepherd", "Ross", "Cross", "Long", "Freeman", "Warren", "Nicholls",
    "Hamilton", "Byrne", "Sutton", "McDonald", "Yates", "Hodgson", "Robson", "Curtis",
    "Hopkins", "O'Connor", "Harper", "Coleman", "Watkins", "Moss", "McCarthy", "Chambers",
    "O'Neill", "Griffin", "Sharp", "Hardy", "Wheeler", "Potter", "Osborne", "Johnston",
    "Gordon", "Doyle", "Wallace", "Jordan", "Hutchinson", "Rowe", "Burke", "Pritchard",
    "Gilbert", "Willis", "Higgins", "Read", "Miles", "Stevenson", "Hammond", "Arnold",
    "Buckley", "Walters", "Hewitt", "Barber", "Nelson", "Slater", "Austin", "Sullivan",
    "Whitehead", "Mann", "Frost", "Lambert", "Blake", "Akhtar", "Lynch", "Goodwin", "Barton",
    "Woodward", "Thomson", "Cunningham", "Quinn", "Barnett", "Baxter", "Clayton", "Nash",
    "Greenwood", "Jennings", "Holt", "Kemp", "Poole", "Gallagher", "Bond", "Stokes", "Tucker",
    "Davidson", "Fowler", "Heath", "Norman", "Middleton", "Lawson", "Banks", "French",
    "Stanley", "Jarvis", "Gibbs", "Ferguson", "Hayward", "Carroll", "Farrell", "Nowak",
    "Kowalski", "Wiśniewski", "Nguyen", "Chen", "Okafor", "Mensah",
)  # fmt: skip

TITLES_MALE: Final = ("Mr", "Mr", "Mr", "Mr", "Dr")
TITLES_FEMALE: Final = ("Mrs", "Ms", "Miss", "Mrs", "Dr")

STREET_NAMES: Final = (
    "High", "Station", "Church", "Park", "Victoria", "Green", "Manor", "Mill", "Kings",
    "Queens", "School", "Grange", "Albert", "Springfield", "Windsor", "New", "Main", "Broad",
    "North", "South", "West", "Chapel", "Orchard", "Meadow", "Elm", "Oak", "Ash", "Beech",
    "Willow", "Cedar", "Highfield", "Brook", "Riverside", "Castle", "Market", "London",
    "York", "Alexandra", "Richmond", "Cromwell", "Nelson", "Wellington", "Stanley", "Clarence",
    "Belmont", "Hillside", "Woodland", "Farm", "Bridge", "Abbey",
)  # fmt: skip

STREET_KINDS: Final = (
    "Road", "Street", "Lane", "Avenue", "Close", "Drive", "Way", "Gardens", "Grove", "Crescent",
)  # fmt: skip

STREET_ABBREVIATIONS: Final[dict[str, str]] = {
    "Road": "Rd",
    "Street": "St",
    "Lane": "Ln",
    "Avenue": "Ave",
    "Close": "Cl",
    "Drive": "Dr",
    "Gardens": "Gdns",
    "Crescent": "Cres",
    "Grove": "Gr",
}
"""How staff and customers shorten street kinds when typing an address."""


@dataclass(frozen=True)
class Town:
    """A post town, its postcode area and its share of the population."""

    name: str
    area: str
    weight: float


TOWNS: Final = (
    Town("London", "E", 4.0), Town("London", "SE", 4.0), Town("London", "SW", 4.0),
    Town("London", "N", 3.0), Town("London", "NW", 3.0), Town("London", "W", 3.0),
    Town("Birmingham", "B", 6.0), Town("Manchester", "M", 5.0), Town("Leeds", "LS", 4.0),
    Town("Glasgow", "G", 4.0), Town("Liverpool", "L", 3.5), Town("Bristol", "BS", 3.0),
    Town("Sheffield", "S", 3.0), Town("Edinburgh", "EH", 3.0), Town("Cardiff", "CF", 2.5),
    Town("Leicester", "LE", 2.5), Town("Nottingham", "NG", 2.5),
    Town("Newcastle upon Tyne", "NE", 2.5), Town("Southampton", "SO", 2.0),
    Town("Brighton", "BN", 2.0), Town("Plymouth", "PL", 1.5), Town("Reading", "RG", 1.5),
    Town("Norwich", "NR", 1.5), Town("York", "YO", 1.2), Town("Oxford", "OX", 1.2),
    Town("Cambridge", "CB", 1.2), Town("Exeter", "EX", 1.0), Town("Belfast", "BT", 2.0),
    Town("Aberdeen", "AB", 1.2), Town("Swansea", "SA", 1.2), Town("Coventry", "CV", 1.8),
    Town("Derby", "DE", 1.3), Town("Stoke-on-Trent", "ST", 1.3), Town("Hull", "HU", 1.2),
    Town("Milton Keynes", "MK", 1.2), Town("Bradford", "BD", 2.0),
    Town("Wolverhampton", "WV", 1.2), Town("Sunderland", "SR", 1.0), Town("Preston", "PR", 1.0),
    Town("Bath", "BA", 0.8), Town("Chester", "CH", 0.8), Town("Ipswich", "IP", 0.9),
    Town("Luton", "LU", 1.0), Town("Portsmouth", "PO", 1.5), Town("Bolton", "BL", 1.0),
    Town("Middlesbrough", "TS", 1.0),
)  # fmt: skip

POSTCODE_UNIT_LETTERS: Final = "ABDEFGHJLNPQRSTUWXYZ"
"""Letters allowed in the last two characters of a UK postcode (no C, I, K, M, O, V)."""

EMAIL_DOMAINS: Final = (
    ("gmail.com", 0.34), ("hotmail.co.uk", 0.12), ("outlook.com", 0.12),
    ("yahoo.co.uk", 0.10), ("icloud.com", 0.10), ("btinternet.com", 0.08),
    ("live.co.uk", 0.05), ("sky.com", 0.04), ("aol.com", 0.02), ("virginmedia.com", 0.03),
)  # fmt: skip

EMAIL_DOMAIN_TYPOS: Final[dict[str, tuple[str, ...]]] = {
    "gmail.com": ("gmial.com", "gmail.co", "gmal.com", "gmail.con", "gamil.com"),
    "hotmail.co.uk": ("hotmial.co.uk", "hotmail.co", "hotmail.com", "hotmal.co.uk"),
    "outlook.com": ("outlok.com", "outlook.co", "outllook.com"),
    "yahoo.co.uk": ("yaho.co.uk", "yahoo.co", "yahoo.com"),
    "icloud.com": ("icloud.co", "iclould.com", "icoud.com"),
    "btinternet.com": ("btinternet.co", "btinternt.com"),
}
"""Mistyped domains seen in real sign-up forms; other domains get a generic typo."""


@dataclass(frozen=True)
class DeviceModel:
    """A handset model: its type allocation code (first 8 IMEI digits) and price."""

    tac: str
    name: str
    price_gbp: float
    weight: float


DEVICE_MODELS: Final = (
    DeviceModel("35325811", "Apple iPhone 15", 799.0, 8.0),
    DeviceModel("35325912", "Apple iPhone 15 Pro", 999.0, 5.0),
    DeviceModel("35407115", "Apple iPhone 14", 699.0, 7.0),
    DeviceModel("35391622", "Apple iPhone 13", 599.0, 7.0),
    DeviceModel("35217431", "Samsung Galaxy S24", 799.0, 6.0),
    DeviceModel("35217532", "Samsung Galaxy S23 Ultra", 1149.0, 3.0),
    DeviceModel("35299041", "Samsung Galaxy A54", 349.0, 7.0),
    DeviceModel("35480218", "Google Pixel 8", 699.0, 3.0),
    DeviceModel("35681427", "Motorola moto g84", 249.0, 3.0),
    DeviceModel("86754903", "Xiaomi Redmi Note 13", 199.0, 3.0),
    DeviceModel("86891204", "OnePlus 12", 849.0, 1.5),
    DeviceModel("35166209", "Nokia G42", 179.0, 1.5),
)
"""Handsets in use; TACs are made up but shaped like real ones."""

PREMIUM_DEVICES: Final = (1, 5)
"""Indices into ``DEVICE_MODELS`` that fraudsters order (resellable, over 900 GBP)."""


@dataclass(frozen=True)
class Plan:
    """A tariff: its code and monthly price."""

    code: str
    monthly_gbp: float
    weight: float


PLANS: Final = (
    Plan("SIMO-10GB", 10.0, 3.0),
    Plan("SIMO-100GB", 16.0, 3.0),
    Plan("UNLIMITED", 25.0, 2.0),
    Plan("HANDSET-24M", 42.0, 3.0),
)
FAMILY_LINE: Final = Plan("FAMILY-LINE", 8.0, 0.0)
"""What an extra line on a household's shared account costs."""


@dataclass(frozen=True)
class Offer:
    """An entry of the offers catalogue, with the operator's margin if accepted."""

    offer_id: str
    name: str
    kind: str
    """``retention`` (made to someone leaving), ``upsell`` or ``cross_sell`` (proactive)."""
    category: str
    """What the offer is about; households favour one proactive category."""
    monthly_margin_gbp: float
    term_months: int
    launch_day: int = 0
    """Day of the window the offer went on sale (0: on sale from the window's start)."""

    @property
    def margin_gbp(self) -> float:
        """Margin over the whole term of the offer."""
        return round(self.monthly_margin_gbp * self.term_months, 2)


OFFERS: Final = (
    Offer("RET-DISC-20", "20% off for 12 months", "retention", "discount", 6.5, 12),
    Offer("RET-DATA-UNL", "Unlimited data at the current price", "retention", "discount", 9.0, 12),
    Offer("RET-LOYALTY-60", "60 GBP loyalty credit", "retention", "loyalty", 4.0, 12),
    Offer("UP-DATA-50GB", "Extra 50GB data add-on", "upsell", "data", 4.5, 6),
    Offer("UP-ROAM-EU", "EU roaming pass", "upsell", "roaming", 3.0, 3),
    Offer("UP-HANDSET-24", "Handset upgrade on a 24-month plan", "upsell", "handset", 14.0, 24),
    Offer("XS-FAMILY-LINE", "Add a family line at half price", "cross_sell", "family", 7.5, 24),
    Offer("XS-STREAMING", "Streaming bundle", "cross_sell", "entertainment", 2.5, 12),
    Offer("XS-BROADBAND", "Home broadband bundle", "cross_sell", "home", 11.0, 18),
    Offer("XS-INSURANCE", "Device insurance", "cross_sell", "protection", 5.5, 12),
    Offer("UP-DATA-20GB", "Extra 20GB data add-on", "upsell", "data", 2.5, 6),
    Offer("UP-DATA-UNL", "Unlimited data upgrade", "upsell", "data", 8.0, 12),
    Offer("UP-ROAM-WORLD", "Worldwide roaming pass", "upsell", "roaming", 6.0, 1),
    Offer("UP-ROAM-USA", "USA and Canada roaming pass", "upsell", "roaming", 4.5, 1),
    Offer("UP-HANDSET-REFURB", "Refurbished handset upgrade", "upsell", "handset", 6.0, 24),
    Offer("UP-HANDSET-FOLD", "Foldable phone launch offer", "upsell", "handset", 18.0, 24, 306),
    Offer("XS-FAMILY-DATA", "Shared family data pool", "cross_sell", "family", 5.0, 12),
    Offer("XS-KIDS-SIM", "Kids' SIM with parental controls", "cross_sell", "family", 3.5, 24),
    Offer("XS-SPORTS", "Sports streaming pass", "cross_sell", "entertainment", 6.0, 12),
    Offer("XS-MUSIC", "Music streaming subscription", "cross_sell", "entertainment", 1.5, 12),
    Offer("XS-GAMING", "Cloud gaming pass", "cross_sell", "entertainment", 3.0, 6, 338),
    Offer("XS-FIBRE-900", "Full-fibre 900 Mbps broadband", "cross_sell", "home", 16.0, 24),
    Offer("XS-HOME-5G", "5G home broadband router", "cross_sell", "home", 9.5, 18, 322),
    Offer("XS-INSURANCE-PLUS", "Loss and theft insurance", "cross_sell", "protection", 8.5, 24),
    Offer("XS-SCREEN", "Screen protection plan", "cross_sell", "protection", 2.0, 12),
)
"""The catalogue: three retention offers and 22 proactive ones in seven categories.

Three proactive offers launch in the window's last two months, so a model trained
before their launch has to score them from what they are, not from their history.
"""
RETENTION_OFFERS: Final = tuple(i for i, offer in enumerate(OFFERS) if offer.kind == "retention")
PROACTIVE_OFFERS: Final = tuple(i for i, offer in enumerate(OFFERS) if offer.kind != "retention")

CATEGORY_POPULARITY: Final[dict[str, float]] = {
    "data": 0.24,
    "entertainment": 0.18,
    "handset": 0.16,
    "family": 0.12,
    "home": 0.12,
    "roaming": 0.10,
    "protection": 0.08,
}
"""Proactive offer categories and the share of households whose favourite each is."""
PROACTIVE_CATEGORIES: Final = tuple(CATEGORY_POPULARITY)

APP_PAGES: Final = (
    ("/account/bill", 0.18), ("/account/usage", 0.2), ("/offers", 0.1), ("/help", 0.1),
    ("/shop/phones", 0.1), ("/roaming", 0.05), ("/account/settings", 0.1),
    ("/network/status", 0.05), ("/contact-us", 0.04), ("/rewards", 0.08),
)  # fmt: skip
"""Pages of the app and website a browsing session visits, with their popularity."""
