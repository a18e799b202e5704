"""English given names and their informal forms, for the ``nicknames`` name level.

A form that belongs to several names (``sam``: Samuel, Samantha) is in each group, so two
names are nicknames of each other when their sets of groups intersect. Forms that are
common given names in their own right in the UK (Liam, Jack, Harry, Charlie, Ella) are
kept, because people do give them for the longer name: EM learns how much such a level
is worth, and it ranks below an exact match either way.
"""

from __future__ import annotations

from typing import Final

import pandas as pd

_GROUPS: Final[dict[str, tuple[str, ...]]] = {
    "abigail": ("abbie", "abby", "abi", "gail"),
    "alexander": ("alex", "alec", "sandy", "xander", "lex"),
    "alexandra": ("alex", "alexa", "lexi", "sandra", "sasha"),
    "alfred": ("alf", "alfie", "fred", "freddie"),
    "amanda": ("mandy", "manda"),
    "andrew": ("andy", "drew"),
    "anthony": ("tony", "ant"),
    "archibald": ("archie", "archy"),
    "arthur": ("art", "artie"),
    "barbara": ("barb", "babs"),
    "benjamin": ("ben", "benny", "benji"),
    "bernard": ("bernie",),
    "catherine": ("cathy", "kate", "katie", "cath", "kat"),
    "charles": ("charlie", "chuck", "chas", "chaz"),
    "charlotte": ("lottie", "charlie", "lotte"),
    "christina": ("chris", "tina", "chrissie"),
    "christine": ("chris", "chrissie"),
    "christopher": ("chris", "kit", "topher"),
    "daniel": ("dan", "danny"),
    "david": ("dave", "davy", "davey"),
    "deborah": ("debbie", "deb", "debs"),
    "donald": ("don", "donny"),
    "dorothy": ("dot", "dotty", "dolly"),
    "edward": ("ed", "eddie", "ted", "teddy", "ned"),
    "eleanor": ("ellie", "nell", "nora"),
    "elizabeth": ("liz", "lizzie", "beth", "betty", "eliza", "libby", "bess", "lisa"),
    "emily": ("em", "emmie", "millie"),
    "florence": ("flo", "florrie"),
    "francis": ("frank", "fran"),
    "frances": ("fran", "frankie"),
    "frederick": ("fred", "freddie", "freddy"),
    "gabriel": ("gabe",),
    "gabrielle": ("gabby", "gaby"),
    "gemma": ("gem",),
    "geoffrey": ("geoff",),
    "gerald": ("gerry", "jerry"),
    "gregory": ("greg",),
    "harold": ("harry", "hal"),
    "harrison": ("harry",),
    "henry": ("harry", "hal", "hank"),
    "isabel": ("izzy", "bella", "belle", "issy"),
    "isabella": ("izzy", "bella", "belle", "issy"),
    "isabelle": ("izzy", "bella", "belle", "issy"),
    "jacob": ("jake", "jay"),
    "james": ("jim", "jimmy", "jamie", "jimbo"),
    "jennifer": ("jen", "jenny", "jenni"),
    "jessica": ("jess", "jessie"),
    "joanna": ("jo", "jojo"),
    "joanne": ("jo", "jojo"),
    "john": ("johnny", "jack", "jon"),
    "jonathan": ("jon", "jonny", "johnny"),
    "joseph": ("joe", "joey", "jo"),
    "joshua": ("josh",),
    "judith": ("judy", "jude"),
    "katherine": ("kate", "kathy", "katie", "kath", "kat", "kay"),
    "kathleen": ("kath", "kathy", "kate"),
    "kenneth": ("ken", "kenny"),
    "lawrence": ("larry", "laurie"),
    "leonard": ("len", "lenny", "leo"),
    "louise": ("lou", "lulu"),
    "margaret": ("maggie", "peggy", "meg", "madge", "maisie", "marge"),
    "matthew": ("matt", "matty"),
    "michael": ("mike", "mick", "micky", "mickey", "mikey"),
    "michelle": ("shelly", "shell", "chelle"),
    "natalie": ("nat", "tally"),
    "nathan": ("nate", "nat"),
    "nathaniel": ("nate", "nat"),
    "nicholas": ("nick", "nicky", "nico"),
    "nicola": ("nicky", "nikki"),
    "oliver": ("ollie", "olly"),
    "olivia": ("liv", "livvy", "ollie"),
    "patricia": ("pat", "patty", "trish", "tricia"),
    "patrick": ("pat", "paddy"),
    "peter": ("pete",),
    "philip": ("phil", "pip"),
    "phillip": ("phil", "pip"),
    "rebecca": ("becky", "becca", "bex"),
    "rebekah": ("becky", "becca", "bex"),
    "richard": ("rich", "richie", "rick", "ricky", "dick"),
    "robert": ("bob", "rob", "bobby", "robbie", "bert"),
    "ronald": ("ron", "ronnie"),
    "samantha": ("sam", "sammy"),
    "samuel": ("sam", "sammy"),
    "sebastian": ("seb", "bastian"),
    "stephanie": ("steph", "stevie"),
    "stephen": ("steve", "stevie"),
    "steven": ("steve", "stevie"),
    "susan": ("sue", "susie", "suzy"),
    "theodore": ("theo", "ted", "teddy"),
    "thomas": ("tom", "tommy"),
    "timothy": ("tim", "timmy"),
    "victoria": ("vicky", "vicki", "tori", "vikki"),
    "vincent": ("vince", "vinny"),
    "william": ("bill", "will", "billy", "willie", "willy"),
    "zachary": ("zach", "zack", "zak"),
}


def _groups_by_name() -> dict[str, str]:
    groups: dict[str, set[str]] = {}
    for formal, informal in _GROUPS.items():
        for name in (formal, *informal):
            groups.setdefault(name, set()).add(formal)
    return {name: "|".join(sorted(found)) for name, found in groups.items()}


_GROUPS_BY_NAME: Final = _groups_by_name()


def nickname_groups(names: pd.Series) -> pd.Series:
    """For cleaned (lower-case) names, the ``|``-joined formal names each may stand for;
    missing for a name in no group."""
    return names.map(_GROUPS_BY_NAME, na_action="ignore")
