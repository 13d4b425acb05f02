"""The wording the default writer draws on: by sector (from the industry), angle (from the
objectives and call to action) and voice (from the tone).

Every sentence here is addressed to the client's customer, never to the team: planning
notes (audience, tone, KPIs, tactics, objectives) go to the brief sheet, not into copy.
Placeholders: ``{client}``, ``{reader}`` (who the copy speaks to, from the audience),
``{noun}`` (what the sector offers). Picking among alternatives is seeded by the client,
so two clients of one sector still read differently.
"""

from __future__ import annotations

from collections.abc import Mapping

import attrs

__all__ = ["ANGLES", "SECTORS", "VOICES", "Angle", "Sector", "Voice"]


@attrs.frozen
class Sector:
    """Wording for one kind of business."""

    keywords: tuple[str, ...]
    noun: str
    pains: tuple[str, ...]
    gains: tuple[str, ...]
    details: tuple[str, ...]
    proofs: tuple[str, ...]
    sections: tuple[str, ...]
    headlines: tuple[str, ...]
    hashtags: tuple[str, ...]
    #: Questions readers ask, each with its answer (blog posts end with them).
    questions: tuple[str, ...] = ()


@attrs.frozen
class Angle:
    """Wording for what the copy asks the reader to do."""

    keywords: tuple[str, ...]
    subjects: tuple[str, ...]
    preheaders: tuple[str, ...]
    pushes: tuple[str, ...]


@attrs.frozen
class Voice:
    """Wording for the brand's tone."""

    keywords: tuple[str, ...]
    greetings: tuple[str, ...]
    sign_offs: tuple[str, ...]
    bridges: tuple[str, ...]


SECTORS: Mapping[str, Sector] = {
    "software": Sector(
        keywords=("saas", "software", "b2b", "analytics", "platform", "tech", "app", "cloud"),
        noun="reporting",
        pains=(
            "Most {reader} lose a morning every week stitching spreadsheets into a report "
            "nobody fully trusts",
            "When every tool keeps its own numbers, the weekly review turns into an argument "
            "about which number is right",
            "Adding one more dashboard rarely helps; it usually adds one more place to check",
            "The questions that matter most tend to arrive five minutes before the meeting",
        ),
        gains=(
            "{client} pulls the numbers you already have into one view that updates itself",
            "With {client}, the report your team used to build by hand is ready before the "
            "first coffee",
            "{client} flags the change that matters, so nobody has to hunt for it",
            "Set-up takes an afternoon, and your existing tools stay exactly where they are",
        ),
        details=(
            "Connect your data sources once and {client} keeps them in step",
            "Each chart links back to the rows behind it, so any figure can be checked in two "
            "clicks",
            "Alerts arrive where your team already talks, with the context to act on them",
            "Permissions follow your org chart, so people see what they need and no more",
        ),
        proofs=(
            "Teams that switch typically cut their weekly reporting time by more than half",
            "Customers tell us the first win is a shorter, calmer Monday meeting",
            "Every plan includes onboarding from people who have run operations themselves",
        ),
        sections=(
            "Where the week goes",
            "One view instead of five",
            "Numbers you can check",
            "Getting started",
        ),
        headlines=(
            "Spend Monday deciding, not compiling",
            "The report that builds itself",
            "Fewer tabs, clearer numbers",
        ),
        hashtags=("#operations", "#analytics", "#reporting", "#saas"),
        questions=(
            "Do we have to replace our current tools? No: {client} reads from the tools you "
            "already use and changes nothing in them",
            "How long before the first report is ready? Most teams see their first combined "
            "view with {client} on the day they connect their data",
            "Who can see what? Access follows the roles you already have, and every change "
            "is logged",
        ),
    ),
    "food": Sector(
        keywords=("food", "bakery", "cafe", "café", "restaurant", "coffee", "grocer", "kitchen"),
        noun="fresh bakes",
        pains=(
            "Weekday mornings leave little time for a proper breakfast",
            "Supermarket loaves look fine on Monday and taste of nothing by Wednesday",
            "The best pastries in town are gone by nine if you arrive without a plan",
            "Feeding a family well at the weekend should not mean a queue out of the door",
        ),
        gains=(
            "At {client}, the ovens are lit before dawn and the first trays are out by seven",
            "{client} bakes in small batches through the day, so the shelves stay full and "
            "the bread stays warm",
            "Everything on the counter at {client} is made on site from flour we know by name",
            "Pick-up at {client} takes a minute: your name, your bag, your morning back",
        ),
        details=(
            "This week's specials include a seeded rye and a cardamom bun that sells out fast",
            "Sourdough rests for a full day before it is baked, which is where the flavour "
            "comes from",
            "Both shops keep a shelf for orders placed ahead, labelled and ready",
            "Ask at the counter about loaves for birthdays, brunches and school fairs",
        ),
        proofs=(
            "Regulars say the Saturday loaf lasts until Tuesday, if it survives the weekend",
            "Many of our bakers trained locally and still live a short walk from the shop",
            "Our croissants are rolled by hand, every single one",
        ),
        sections=(
            "Baked this morning",
            "Why small batches taste better",
            "Skip the queue",
            "See you at the counter",
        ),
        headlines=(
            "Warm bread, ready when you are",
            "Your weekend starts at the counter",
            "Fresh from the oven, just around the corner",
        ),
        hashtags=("#freshbread", "#shoplocal", "#bakery", "#weekendtreats"),
        questions=(
            "Can I order for a larger group? Yes: {client} takes orders for brunches and "
            "parties with two days' notice",
            "Do you bake anything without wheat? Ask at the counter at {client}; the choice "
            "changes daily and we label every tray",
            "When are the shelves fullest? Early in the morning and again just before lunch",
        ),
    ),
    "finance": Sector(
        keywords=("fintech", "finance", "bank", "payment", "insurance", "lending", "accounting"),
        noun="business payments",
        pains=(
            "Opening a business account can take weeks of forms, branch visits and follow-up calls",
            "Fees for cross-border payments are often buried three pages deep in a price list",
            "Waiting days for a transfer to land makes every supplier conversation harder",
            "Reconciling card payments by hand eats the hours a small team does not have",
        ),
        gains=(
            "With {client}, a business account opens online in minutes, with no branch visit",
            "{client} shows every fee before you pay it, in plain numbers",
            "Payments with {client} settle the same day across the EU",
            "{client} matches incoming payments to invoices automatically",
        ),
        details=(
            "Your account is held at a licensed institution and client funds are kept separate",
            "Two-factor sign-in and spending limits per card come as standard",
            "Exports fit the accounting tools small businesses already use",
            "Support is reachable by chat, staffed by people who can actually fix things",
        ),
        proofs=(
            "Founders tell us the first month pays for itself in saved admin time",
            "Pricing is published in full, and it is the same for every customer",
            "Most accounts are verified within one working day",
        ),
        sections=(
            "An account without the paperwork",
            "Every fee, up front",
            "Money that arrives on time",
            "Open yours",
        ),
        headlines=(
            "A business account that opens in minutes",
            "Payments without the fine print",
            "Banking built for small online shops",
        ),
        hashtags=("#smallbusiness", "#payments", "#ecommerce", "#fintech"),
        questions=(
            "Is my money safe? {client} keeps customer funds separate, with a licensed institution",
            "What does it cost? Every fee is listed on {client}'s pricing page, with no "
            "minimum term",
            "Can I move my existing account over? Yes, and our team helps you switch "
            "without a gap in payments",
        ),
    ),
    "health": Sector(
        keywords=("health", "physio", "clinic", "dental", "medical", "therapy", "wellness", "care"),
        noun="treatment",
        pains=(
            "A stiff back or a sore knee has a way of shrinking the things you enjoy",
            "Waiting lists for a first appointment can stretch for weeks",
            "Exercises printed on a sheet are easy to forget once the pain eases",
            "It is hard to know whether an ache needs rest, movement or a professional",
        ),
        gains=(
            "At {client}, a first assessment usually happens within the week",
            "{client} builds each plan around the activity you want back, not a generic routine",
            "Sessions at {client} are one to one, with the same clinician each time",
            "{client} keeps evening and early slots free for people who work office hours",
        ),
        details=(
            "Your first visit includes a full assessment and a plan you take home",
            "Between sessions, a short video shows each exercise so you can do it right",
            "We explain what we find in plain words and tell you what to expect next",
            "Appointments can be moved online up to a day before without a fee",
        ),
        proofs=(
            "Most patients feel a clear difference within three to four sessions",
            "Our clinicians are registered and keep their training current every year",
            "Patients often come back to us for their family and friends",
        ),
        sections=(
            "When pain gets in the way",
            "A plan built around you",
            "What a session looks like",
            "Book a first visit",
        ),
        headlines=(
            "Get back to the things you love doing",
            "Move freely again, one session at a time",
            "Care that starts with listening",
        ),
        hashtags=("#physio", "#wellbeing", "#movebetter", "#health"),
        questions=(
            "Do I need a referral from my doctor? No: you can book a first assessment at "
            "{client} directly",
            "What should I wear? Something comfortable you can move in, as you would for a "
            "light workout",
            "How many sessions will I need? Your clinician at {client} gives you an honest "
            "estimate after the first visit",
        ),
    ),
    "hospitality": Sector(
        keywords=("hotel", "hospitality", "travel", "inn", "resort", "b&b", "tourism", "stay"),
        noun="stays",
        pains=(
            "Too many city breaks are spent in rooms that could be anywhere",
            "Booking sites make every hotel look the same until you arrive",
            "A short trip loses its charm when the check-in queue takes the first hour",
            "Finding a quiet room in the middle of town usually means paying for it twice",
        ),
        gains=(
            "{client} has rooms that look out over the old harbour, each one a little different",
            "At {client}, check-in is a handshake and a key, not a queue",
            "Breakfast at {client} is cooked to order with bread from the street's own bakery",
            "{client} sits a short walk from the museums, yet the rooms are quiet at night",
        ),
        details=(
            "Every room has blackout curtains, a proper desk and windows that open",
            "Our staff keep a short list of the places locals actually eat",
            "Late check-out is free on Sundays whenever the next guest allows it",
            "Bikes are lent at the front desk for anyone who wants to explore",
        ),
        proofs=(
            "Guests return often enough that we keep notes on how they take their coffee",
            "Reviews mention the breakfast and the staff by name",
            "Many of our weekend guests book their next stay before they leave",
        ),
        sections=(
            "A room with a view",
            "Arrive and unwind",
            "The town on your doorstep",
            "Plan your stay",
        ),
        headlines=(
            "A weekend by the water, minus the crowds",
            "Stay where the town feels like home",
            "Small hotel, big welcome",
        ),
        hashtags=("#citybreak", "#boutiquehotel", "#weekendaway", "#travel"),
        questions=(
            "Is there parking nearby? {client} has an arrangement with the garage around the "
            "corner at a guest rate",
            "Can we check in late? Yes: tell {client} your arrival time and a key will be waiting",
            "Are pets welcome? Well-behaved dogs stay free in our ground-floor rooms",
        ),
    ),
    "generic": Sector(
        keywords=(),
        noun="service",
        pains=(
            "Most {reader} have tried a few options and found each one harder than it looked",
            "The hard part is rarely knowing what to do; it is finding the time to do it",
            "Small frustrations add up when the same job comes round every week",
            "Choosing a provider should not feel like a gamble",
        ),
        gains=(
            "{client} takes the routine part off your plate and reports back clearly",
            "With {client}, you know what happens next and when",
            "{client} keeps the promise simple and then keeps it",
            "Getting started with {client} takes one short conversation",
        ),
        details=(
            "You get one named contact who knows your account",
            "Prices are fixed in advance, so there are no surprises on the invoice",
            "Progress is shared in a short summary you can read in two minutes",
            "Changes of plan are easy to make and confirmed the same day",
        ),
        proofs=(
            "Customers stay with us because the work is done well and on time",
            "Most new customers arrive through a recommendation",
            "We measure ourselves by how little chasing our customers have to do",
        ),
        sections=("The problem", "A better way", "How it works", "Next steps"),
        headlines=(
            "Less hassle, better results",
            "The simpler way to get it done",
            "Done well, done on time",
        ),
        hashtags=("#smallbusiness", "#service", "#local"),
        questions=(
            "How do I get started? One short conversation with {client} is enough to agree "
            "the first steps",
            "What if my needs change? Plans change easily, and {client} confirms every change "
            "the same day",
        ),
    ),
}

ANGLES: Mapping[str, Angle] = {
    "trial": Angle(
        keywords=("trial", "trials", "signup", "signups", "sign-up", "sign-ups", "sign up"),
        subjects=(
            "Try {client} free, no card needed",
            "Two weeks to see the difference",
            "See what {client} does for you, free",
        ),
        preheaders=(
            "Start today; setting up takes a few minutes.",
            "Start free and keep everything you build.",
        ),
        pushes=(
            "The quickest way to judge is to try it yourself, on your own work",
            "You can be up and running before the end of the week",
        ),
    ),
    "demo": Angle(
        keywords=("demo", "call", "consultation", "meeting", "sales"),
        subjects=(
            "Twenty minutes, your data, real answers",
            "See {client} on your own numbers",
            "A short walkthrough, booked when it suits you",
        ),
        preheaders=(
            "Bring one question and leave with the answer.",
            "A walkthrough tailored to how your team works.",
        ),
        pushes=(
            "A short walkthrough shows more than any brochure",
            "Bring the question your team argues about most; we will answer it live",
        ),
    ),
    "visit": Angle(
        keywords=("foot traffic", "visit", "footfall", "store", "shop", "pickup", "pick-up"),
        subjects=(
            "Your weekend, sorted before Friday",
            "Something good is waiting at {client}",
            "Drop by {client} this week",
        ),
        preheaders=(
            "Order ahead and skip the queue this weekend.",
            "Everything held for you, ready when you arrive.",
        ),
        pushes=(
            "Order ahead and your bag will be waiting with your name on it",
            "Come early for the best choice, or order ahead and come whenever suits you",
        ),
    ),
    "subscribe": Angle(
        keywords=("newsletter", "subscriber", "subscribe", "list", "audience"),
        subjects=(
            "News from {client}, once a week",
            "The week ahead at {client}",
            "A little something for our regulars",
        ),
        preheaders=(
            "Specials, news and early notice of anything that sells out.",
            "One short email a week, worth opening.",
        ),
        pushes=(
            "Forward this to a neighbour who would enjoy it",
            "Reply any time; a real person reads every message",
        ),
    ),
    "account": Angle(
        keywords=("account", "open", "onboard", "customer", "register"),
        subjects=(
            "Your business account, open today",
            "Open an account with {client} in minutes",
            "Less paperwork, more selling",
        ),
        preheaders=(
            "No branch visit, no hidden fees, same-day payments.",
            "Sign-up takes about ten minutes with your company details to hand.",
        ),
        pushes=(
            "Have your company details to hand and the sign-up takes about ten minutes",
            "There is no minimum balance and no charge to open",
        ),
    ),
    "booking": Angle(
        keywords=(
            "booking",
            "bookings",
            "book",
            "appointment",
            "appointments",
            "reservation",
            "reservations",
            "occupancy",
            "patients",
        ),
        subjects=(
            "A time that suits you this week",
            "Your next visit to {client}, booked in a minute",
            "Good news: there is space this week",
        ),
        preheaders=(
            "Pick a slot online and get a confirmation straight away.",
            "Early, evening and weekend times available.",
        ),
        pushes=(
            "Choose a time online and you will get a confirmation straight away",
            "If you have a question first, ask us; a real person replies the same day",
        ),
    ),
    "generic": Angle(
        keywords=(),
        subjects=("News from {client}", "Something new at {client}", "A quick note from {client}"),
        preheaders=(
            "What is new, and what it means for you.",
            "Two minutes to read, worth your time.",
        ),
        pushes=(
            "The next step takes a minute",
            "Get in touch and we will take it from there",
        ),
    ),
}

VOICES: Mapping[str, Voice] = {
    "warm": Voice(
        keywords=("warm", "friendly", "neighbourly", "neighborly", "caring", "kind", "welcoming"),
        greetings=("Hello, neighbours!", "Good morning from {client}.", "Hi there,"),
        sign_offs=("See you soon, from all of us at {client}", "Warmly, the {client} team"),
        bridges=("We would love to see you", "It would be lovely to say hello"),
    ),
    "precise": Voice(
        keywords=("precise", "trustworthy", "formal", "professional", "reliable", "expert"),
        greetings=("Hello,", "Good day,", "Hello there,"),
        sign_offs=("Kind regards, the {client} team", "Regards, {client}"),
        bridges=("The next step is simple", "Everything you need is in one place"),
    ),
    "playful": Voice(
        keywords=("playful", "fun", "cheeky", "bold", "quirky", "lively"),
        greetings=("Hey!", "Guess what?", "Hi friend,"),
        sign_offs=("Catch you soon, {client}", "Cheers, the {client} crew"),
        bridges=("Here is the fun part", "Now for the good bit"),
    ),
    "direct": Voice(
        keywords=("plain", "confident", "direct", "clear", "simple", "calm", "no hype"),
        greetings=("Hello,", "Hi,", "A quick one,"),
        sign_offs=("The {client} team", "Thanks, {client}"),
        bridges=("Ready when you are", "Seeing it beats reading about it"),
    ),
}
