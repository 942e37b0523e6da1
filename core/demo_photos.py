"""The "photos" demo style: colour cut-outs of items photographed on tables, floors, beds and sheets.

Items are Tux Paint stamps (Debian package tuxpaint-stamps-default, GPL-2+; SVG stamps are rasterised
with rsvg-convert from librsvg2-bin). Surfaces are GIMP patterns (gimp-data, GPL-3+) and textures made
here with numpy. `ListingPhotosStyle` plans and renders them for core.demo.build_demo.
"""
from __future__ import annotations

import functools
import io
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd
from PIL import Image, ImageChops, ImageFilter, ImageOps

from core.demo import DemoSourceError, DemoStyle, pick_one, draw_prices, draw_sellers

STAMPS_DIR = Path("/usr/share/tuxpaint/stamps")
PATTERNS_DIR = Path("/usr/share/gimp/2.0/patterns")
#: The default demo has about this many listing photos, whatever the number of classes.
DEFAULT_PHOTOS = 5000
DEFAULT_NOISE_RATE = 0.10
PRICE_SIGMA = 0.4  # standard deviation of log(price) around an item's median
MIN_SIDE, MAX_SIDE = 320, 900  # photo sides, pixels
SECOND_ITEM_SHARE = 0.15  # of photos, with a smaller item of another class in a corner
RANDOM_FLIP_SHARE = 0.2  # of planted mislabels, sent to any class rather than a confusable one
MISLEADING_TITLE_SHARE = 0.4  # of mislabelled listings, titled in the words of the wrong class
TITLE_KINDS = ("describing", "generic", "misleading", "none")


@dataclass(frozen=True)
class Stamp:
    """One item picture: `path` under the stamps folder without extension (.png, else .svg), the item's
    name as a seller writes it, its median asking price in EUR, and its fine and broad class."""

    path: str
    name: str
    price: float
    fine: str
    broad: str


# Fine class -> (broad class, ((stamp path, item name, median price EUR), ...)). Paths are under
# /usr/share/tuxpaint/stamps; names follow the stamps' .txt descriptions, shortened as a seller would.
# Left out: symbols, town, space, military, people, wild animals, and stamps that are not things one
# sells (gravestones, road signs, fireworks) or are too small to see (bat_left, hard_candy).
_CATALOGUE: dict[str, tuple[str, tuple[tuple[str, str, float], ...]]] = {
    "clothes": ("clothing", (
        ("clothes/bellbottoms", "bell-bottom trousers", 25), ("clothes/bikini", "bikini", 15),
        ("clothes/black_dress", "black dress", 35), ("clothes/bluejeans1", "patched jeans", 20),
        ("clothes/bluejeans2", "jeans", 25), ("clothes/jacket", "grey jacket", 45),
        ("clothes/t-shirt_01", "t-shirt", 8), ("clothes/t_jacket", "jacket", 40),
        ("clothes/t_pants", "trousers", 20), ("clothes/t_poloshirt", "polo shirt", 12),
        ("clothes/t_shirt", "shirt", 15), ("clothes/t_sock", "socks", 4), ("clothes/t_tshirt", "t-shirt", 8),
        ("clothes/top_skirt", "top and skirt set", 22), ("clothes/white_pants", "white trousers", 18),
        ("clothes/t_scarf", "scarf", 10), ("clothes/t_glove", "gloves", 8),
    )),
    "hats": ("clothing", (
        ("clothes/hats/blue_fedora", "fedora", 25), ("clothes/hats/brownhat", "brown hat", 18),
        ("clothes/hats/brownhat2", "felt hat", 20), ("clothes/hats/cowboy_hat", "cowboy hat", 30),
        ("clothes/hats/crown1", "costume crown", 8), ("clothes/hats/crown2", "party crown", 6),
        ("clothes/hats/elfhat", "elf hat", 6), ("clothes/hats/feathered_hat", "feathered hat", 22),
        ("clothes/hats/green_fedora", "green fedora", 25), ("clothes/hats/greenhat", "St Patrick's hat", 7),
        ("clothes/hats/hardhat", "hard hat", 12), ("clothes/hats/mortarboard", "graduation cap", 15),
        ("clothes/hats/propeller_hat", "propeller cap", 9), ("clothes/hats/purplehat", "purple sun hat", 14),
        ("clothes/hats/sombrero", "sombrero", 16), ("clothes/hats/tophat", "top hat", 35),
        ("clothes/hats/wizardhat", "wizard hat", 10), ("clothes/t_baseballcap", "baseball cap", 10),
        ("seasonal/christmas/santahat2", "Santa hat", 5), ("seasonal/christmas/elfhat", "Christmas elf hat", 5),
    )),
    "accessories": ("clothing", (
        ("clothes/glasses1", "glasses", 30), ("clothes/glasses2", "reading glasses", 15),
        ("clothes/sunglasses_01", "sunglasses", 20), ("clothes/sunglasses_02", "sunglasses", 25),
        ("clothes/red_handbag", "red handbag", 35), ("clothes/red_highheel", "high heels", 30),
        ("clothes/hikingboot", "hiking boots", 45), ("clothes/bowtie", "bow tie", 9),
        ("household/umbrella", "umbrella", 12),
    )),
    "computers": ("electronics", (
        ("household/electronics/calculator", "calculator", 8), ("household/electronics/compact_disc", "CD", 3),
        ("household/electronics/inkjet_printer", "inkjet printer", 40),
        ("household/electronics/laptop", "laptop", 350), ("household/electronics/laser_printer", "laser printer", 90),
        ("household/electronics/monitor", "monitor", 80), ("household/electronics/mouse", "computer mouse", 10),
    )),
    "phones-cameras": ("electronics", (
        ("household/electronics/mobile", "mobile phone", 60), ("household/electronics/phone", "desk phone", 15),
        ("household/electronics/DSLR_Camera", "DSLR camera", 420),
        ("household/electronics/camera", "compact camera", 60),
        ("household/electronics/digitalcamera", "digital camera", 70),
        ("hobbies/camera_35mm", "35mm film camera", 120), ("hobbies/binoculars", "binoculars", 55),
    )),
    "appliances": ("electronics", (
        ("household/Washing-machine", "washing machine", 180), ("household/clothes_iron", "steam iron", 15),
        ("household/fridge", "fridge", 150), ("household/kettle", "electric kettle", 15),
        ("household/microwave", "microwave", 45), ("household/vacuum_cleaner", "vacuum cleaner", 60),
    )),
    "kitchen": ("home-garden", (
        ("household/dishes/bottle", "glass bottle", 3), ("household/dishes/cartoon/pasta_pot", "stock pot", 20),
        ("household/dishes/cartoon/pressure_cooker", "pressure cooker", 35),
        ("household/dishes/coffeecup", "cup and saucer", 5), ("household/dishes/expresso", "espresso cup", 4),
        ("household/dishes/fork", "forks", 3), ("household/dishes/cartoon/fork", "fork", 2),
        ("household/dishes/glass", "drinking glass", 2), ("household/dishes/knife", "knife", 4),
        ("household/dishes/mug", "mug", 4), ("household/dishes/pitcher_small", "porcelain jug", 12),
        ("household/dishes/spoon", "spoons", 3), ("household/dishes/cartoon/spoon", "spoon", 2),
        ("household/dishes/teapot", "teapot", 15), ("household/dishes/utensils/nutcracker", "nutcracker", 6),
        ("household/dishes/utensils/pepper_grinder", "pepper mill", 10),
    )),
    "tools": ("home-garden", (
        ("household/tools/cementmixer", "cement mixer", 180), ("household/tools/hammer", "hammer", 8),
        ("household/tools/hammer2", "claw hammer", 10), ("household/tools/mallet_metal", "sledgehammer", 20),
        ("household/tools/measuring_tape", "tape measure", 6), ("household/tools/paintbrush_large", "paint brush", 4),
        ("household/tools/plyers", "pliers", 8), ("household/tools/saw", "hand saw", 12),
        ("household/tools/screwdriver", "screwdriver", 4), ("household/tools/spade", "garden spade", 15),
        ("household/tools/toolbox", "toolbox", 25), ("household/tools/wrench", "spanner", 6),
        ("household/tools/wrench_adjustable", "adjustable wrench", 9),
        ("household/tools/wrench_plumbers", "pipe wrench", 14), ("seasonal/leafrake", "leaf rake", 9),
        ("household/cylinder", "gas bottle", 30),
    )),
    "garden": ("home-garden", (
        ("plants/flowers/adeenia", "desert rose plant", 15), ("plants/flowers/anemone_red", "anemones", 6),
        ("plants/flowers/anthoorium", "anthurium", 14), ("plants/flowers/bolsom", "balsam plant", 5),
        ("plants/flowers/chemparathi", "hibiscus", 10), ("plants/flowers/daffodil", "daffodils", 5),
        ("plants/flowers/flower1", "flowering plant", 7), ("plants/flowers/flower2", "flowers", 6),
        ("plants/flowers/flower3", "flower cuttings", 4), ("plants/flowers/flower4", "flowers", 6),
        ("plants/flowers/flower5", "bedding plant", 3), ("plants/flowers/flower6", "flowering plant", 7),
        ("plants/flowers/flower7", "flowers", 6), ("plants/flowers/flower8", "flower", 5),
        ("plants/flowers/flower9", "flower", 5), ("plants/flowers/flower10", "hibiscus flower", 8),
        ("plants/flowers/iris", "iris", 6), ("plants/flowers/marigold", "marigolds", 4),
        ("plants/flowers/pigface", "pigface plant", 6),
        ("plants/flowers/plastic/chuvanna_plastic_poo", "plastic flower", 3),
        ("plants/flowers/red-gazania", "gazania", 5), ("plants/flowers/rose", "rose", 8),
        ("plants/flowers/whitestar-petunia", "petunia", 4), ("plants/flowers/yellow-flower", "yellow flowers", 5),
        ("plants/lavender", "lavender plant", 8), ("plants/thyme", "thyme plant", 4),
        ("plants/eggplant", "aubergine plant", 6), ("plants/trees/birch", "birch sapling", 25),
        ("plants/trees/holm_oak", "oak sapling", 30), ("plants/trees/liberia-palm", "palm tree", 45),
        ("plants/trees/tree336", "nut tree sapling", 35), ("plants/trees/holly_leaves", "holly", 5),
        ("plants/trees/pinecone", "pine cones", 3), ("seasonal/easter/daffodil", "daffodil", 4),
    )),
    "household": ("home-garden", (
        ("household/Lightbulb", "light bulb", 3), ("household/globe", "desk globe", 20),
        ("household/tealight", "tealights", 3), ("seasonal/candle", "candle", 4),
        ("seasonal/hanukkah/menorah", "menorah", 25), ("household/padlock_closed", "padlock", 6),
        ("household/padlock_open", "padlock", 6), ("household/garbagecan", "metal bin", 15),
        ("household/trash_can", "pedal bin", 18), ("household/recyclingbox", "recycling box", 8),
        ("household/recyclingbox2", "recycling box", 8), ("household/wheelie_bin", "wheelie bin", 30),
        ("household/home_compost_bin", "compost bin", 25), ("household/toilet", "toilet", 60),
        ("clothes/clotheshanger", "wooden hangers", 5), ("clothes/clothespin_new", "clothes pegs", 2),
        ("clothes/clothespin_old", "wooden pegs", 2), ("clothes/button", "buttons", 2),
        ("seasonal/christmas/Christmas_Tree_photo", "Christmas tree", 25),
        ("seasonal/christmas/tree", "artificial Christmas tree", 20),
        ("seasonal/christmas/xmaswreath", "wreath", 12), ("seasonal/christmas/star", "tree topper star", 4),
        ("seasonal/christmas/stocking", "Christmas stocking", 5), ("seasonal/christmas/present", "gift box", 5),
        ("seasonal/christmas/German_Christmas_toy", "wooden smoker figure", 25),
    )),
    "cars": ("vehicles", (
        ("vehicles/auto/beetle", "VW Beetle", 6500), ("vehicles/auto/sedan", "saloon car", 4500),
        ("vehicles/auto/sportscar", "sports car", 18000), ("vehicles/auto/sportscar2", "convertible", 12000),
        ("vehicles/auto/sportscar3", "sports coupe", 22000), ("vehicles/auto/truck", "pickup truck", 9000),
        ("vehicles/emergency/sedan_police", "ex-police car", 3500),
    )),
    "trucks-machinery": ("vehicles", (
        ("vehicles/blue_truck", "tipper truck", 14000), ("vehicles/iso_lorry1", "logging truck", 25000),
        ("vehicles/iso_lorry2", "tanker truck", 30000), ("vehicles/iso_lorry3", "box truck", 12000),
        ("vehicles/iso_lorry4", "small dump truck", 9000), ("vehicles/iso_bus", "bus", 15000),
        ("vehicles/iso_fireengine", "fire engine", 20000), ("vehicles/garbagetruck", "refuse truck", 18000),
        ("vehicles/masstransit/green_korean_bus", "minibus", 11000),
        ("vehicles/emergency/firetruck", "fire truck", 25000), ("vehicles/construction/dumper", "site dumper", 3500),
        ("vehicles/construction/cartoon/forklift", "forklift", 6000),
        ("vehicles/construction/cartoon/forklift2", "forklift", 5500),
        ("vehicles/construction/cartoon/terex", "dump truck", 40000),
        ("vehicles/construction/cartoon/bulldozer", "bulldozer", 35000),
        ("vehicles/farming/cartoon/tractor", "tractor", 12000),
    )),
    "bikes-boats": ("vehicles", (
        ("vehicles/cycle/bluebike", "mountain bike", 150), ("vehicles/cycle/motorbike", "motorbike", 3500),
        ("vehicles/ship/sail_boat1", "sailing yacht", 15000), ("vehicles/ship/sail_boat2", "sailing dinghy", 1800),
        ("vehicles/ship/chineseJunk", "wooden sailing boat", 4000), ("vehicles/bikewheel", "bicycle wheel", 25),
        ("vehicles/7spoke256", "alloy wheel", 80), ("vehicles/tyre_with_rim", "tyre on rim", 60),
        ("vehicles/wheel_tractor", "tractor tyre", 120),
    )),
    "music": ("music", (
        ("hobbies/music/string/cello", "cello", 600), ("hobbies/music/string/guitar2", "electric guitar", 180),
        ("hobbies/music/string/guitar_classical", "classical guitar", 90),
        ("hobbies/music/string/guitar_electric", "electric guitar", 250),
        ("hobbies/music/string/guitar_electric_bass", "bass guitar", 220),
        ("hobbies/music/string/guitar_electric_bass2", "bass guitar", 200),
        ("hobbies/music/string/violin", "violin", 180), ("hobbies/music/string/violin2", "violin", 150),
        ("hobbies/music/brass/trumpet", "trumpet", 220), ("hobbies/music/percussion/cymbal_crash", "crash cymbal", 70),
        ("hobbies/music/percussion/drum_tomtom_floor", "floor tom", 80),
        ("hobbies/music/percussion/drumkit", "drum kit", 350), ("hobbies/music/wind/bassoon", "bassoon", 900),
    )),
    "sports": ("sports", (
        ("sports/australian_rules_football", "Aussie rules football", 15), ("sports/basketball", "basketball", 12),
        ("sports/cartoon/volleyball", "volleyball", 10), ("sports/cricketball", "cricket ball", 8),
        ("sports/football", "American football", 15), ("sports/soccer", "football", 10),
        ("sports/tennis_ball", "tennis balls", 4), ("sports/cartoon/football_helmet_front", "football helmet", 40),
        ("sports/cartoon/football_helmet_side", "football helmet", 40), ("sports/tennis_racket", "tennis racket", 35),
        ("sports/trophy_cup", "trophy", 12), ("sports/stopwatch", "stopwatch", 10),
        ("seasonal/winter/sledge", "sledge", 30),
    )),
    "fruit": ("food", (
        ("food/fruit/Apricot_whole", "apricots", 3), ("food/fruit/Cherry_Stella", "cherries", 4),
        ("food/fruit/Strawberry2", "strawberries", 4), ("food/fruit/apple_fuji", "Fuji apples", 2),
        ("food/fruit/apple_granny_smith", "Granny Smith apples", 2), ("food/fruit/apple_green", "green apples", 2),
        ("food/fruit/apple_red", "red apples", 2), ("food/fruit/apple_sierra_beauty", "apples", 2),
        ("food/fruit/apricot", "apricots", 3), ("food/fruit/avocado", "avocados", 3),
        ("food/fruit/banana", "bananas", 2), ("food/fruit/cartoon/apple", "apples", 2),
        ("food/fruit/cartoon/banana", "bananas", 2), ("food/fruit/cartoon/blueberry", "blueberries", 4),
        ("food/fruit/cartoon/cherries", "cherries", 4), ("food/fruit/cartoon/cherries2", "cherries", 4),
        ("food/fruit/cartoon/grapes", "grapes", 3), ("food/fruit/cartoon/lemon", "lemons", 2),
        ("food/fruit/cartoon/orange", "oranges", 2), ("food/fruit/cartoon/peach", "peaches", 3),
        ("food/fruit/cartoon/pear", "pears", 2), ("food/fruit/cartoon/pineapple", "pineapple", 3),
        ("food/fruit/cartoon/prune", "plums", 3), ("food/fruit/cartoon/raspberry", "raspberries", 4),
        ("food/fruit/cartoon/strawberry", "strawberries", 4), ("food/fruit/cartoon/watermelon", "watermelon", 5),
        ("food/fruit/cherimoya", "cherimoya", 4), ("food/fruit/grapes", "grapes", 3),
        ("food/fruit/kiwi", "kiwis", 2), ("food/fruit/lemon", "lemons", 2),
        ("food/fruit/mandarine", "mandarins", 2), ("food/fruit/mango", "mangoes", 3),
        ("food/fruit/orange", "oranges", 2), ("food/fruit/orange_seville", "Seville oranges", 3),
        ("food/fruit/pear", "pears", 2), ("food/fruit/pineapple", "pineapple", 3),
        ("food/fruit/pomegranate", "pomegranates", 3), ("food/fruit/raspberry", "raspberries", 4),
        ("food/fruit/sliced_lime", "limes", 2), ("food/fruit/sliced_orange", "oranges", 2),
        ("food/fruit/strawberry", "strawberries", 4),
    )),
    "vegetables": ("food", (
        ("food/vegetables/broccoli", "broccoli", 2), ("food/vegetables/carrot", "carrots", 2),
        ("food/vegetables/chilepepper", "chillies", 2), ("food/vegetables/corn", "sweet corn", 2),
        ("food/vegetables/eggplant", "aubergines", 2), ("food/vegetables/garlic", "garlic", 2),
        ("food/vegetables/garlics", "garlic string", 4), ("food/vegetables/lettuce", "lettuce", 2),
        ("food/vegetables/mushroom", "mushrooms", 3), ("food/vegetables/onion", "onions", 2),
        ("food/vegetables/pattypan_squash", "pattypan squash", 3), ("food/vegetables/pepper", "green peppers", 2),
        ("food/vegetables/potato", "potatoes", 3), ("food/vegetables/pumpkin_small", "pumpkin", 4),
        ("food/vegetables/redlettuce", "red lettuce", 2), ("food/vegetables/tomato", "tomatoes", 3),
        ("food/vegetables/yam", "sweet potatoes", 3), ("food/vegetables/yellowpepper", "yellow peppers", 2),
        ("food/spices/ginger", "ginger", 3), ("food/nuts/almond", "almonds", 6), ("food/nuts/pecan", "pecans", 7),
        ("food/nuts/walnut", "walnuts", 5), ("plants/mushrooms/cep", "porcini mushrooms", 12),
        ("plants/mushrooms/cep-1", "porcini mushrooms", 12), ("plants/mushrooms/cep-2", "ceps", 12),
    )),
    "bakery-sweets": ("food", (
        ("food/bread", "bread rolls", 3), ("food/cheese", "cheese", 6), ("food/loaf_of_bread", "sliced loaf", 3),
        ("food/dessert/cartoon/birthday_cake", "birthday cake", 25), ("food/dessert/cartoon/pink_cake", "cake", 20),
        ("food/dessert/smallcake", "cupcakes", 2), ("food/pizza", "homemade pizza", 8),
        ("seasonal/christmas/Christmas_pudding", "Christmas pudding", 12),
        ("seasonal/christmas/Mince_Pie", "mince pies", 6), ("seasonal/christmas/Roast_turkey", "roast turkey", 30),
        ("seasonal/christmas/Candy_cane_photo_1", "candy canes", 2),
        ("seasonal/christmas/Candy_cane_photo_2", "candy canes", 2), ("seasonal/christmas/candy_cane", "candy cane", 2),
        ("seasonal/easter/wrapped_chocolate_easter_egg", "chocolate eggs", 3),
        ("seasonal/easter/wrapped_chocolate_easter_egg_2", "chocolate eggs", 3),
    )),
    "soft-toys": ("toys", (
        ("animals/mammals/bears/cartoon/teddy_bear", "teddy bear", 12),
        ("animals/mammals/bears/toys/edward_bear", "vintage teddy", 25), ("people/toys/grannysmith", "rag doll", 15),
        ("animals/birds/cartoon/tux", "penguin plush", 15), ("animals/birds/cartoon/pengwin", "penguin plush", 12),
        ("animals/birds/cartoon/penguin_with_spider", "plush toy set", 15), ("household/rubberduck", "rubber duck", 3),
        ("animals/dinosaur/cartoon/dinosaurSings", "dinosaur toy", 10),
        ("animals/mammals/cats/cartoon/lion", "toy lion", 8),
        ("animals/marsupials/cartoon/kangaroo-silo", "toy kangaroo", 6),
        ("animals/insects/cartoon/ladybug", "ladybird toy", 5),
        ("animals/insects/cartoon/ladybug-2", "ladybird toy", 5),
        ("animals/insects/cartoon/snail", "snail toy", 5), ("animals/insects/cartoon/snail2", "snail toy", 5),
        ("seasonal/easter/bunny", "bunny plush", 10), ("seasonal/easter/bunny-egg", "bunny plush", 10),
        ("seasonal/easter/bunny-head", "bunny puppet", 8), ("seasonal/easter/chick", "chick plush", 6),
        ("seasonal/easter/chick-hatched", "chick plush", 6), ("seasonal/christmas/Santa", "Santa figure", 10),
        ("seasonal/christmas/rudolf_reindeer", "reindeer toy", 10), ("seasonal/winter/snowman", "snowman figure", 8),
        ("seasonal/winter/snowman2", "snowman figure", 8), ("seasonal/easter/bluebird", "bird figure", 5),
    )),
    "toy-vehicles": ("toys", (
        ("vehicles/toy_truck", "toy truck", 12), ("vehicles/locomotive/cartoon/toy_train", "toy train", 20),
        ("vehicles/locomotive/cartoon/boxcar", "toy train wagon", 8),
        ("vehicles/locomotive/cartoon/caboose", "toy train caboose", 8),
        ("vehicles/locomotive/cartoon/carriage", "toy train carriage", 8),
        ("vehicles/locomotive/cartoon/tanker", "toy tanker wagon", 8),
        ("vehicles/locomotive/cartoon/tender", "toy coal tender", 8),
        ("vehicles/construction/cartoon/cementMixer", "toy cement mixer", 10),
        ("vehicles/construction/cartoon/towTruck", "toy tow truck", 10),
        ("vehicles/ship/cartoon/tugboat", "toy tugboat", 9), ("vehicles/ship/cartoon/bathyscape", "toy submarine", 12),
        ("vehicles/flight/cartoon/eddieCopter", "toy helicopter", 12),
        ("vehicles/flight/planes/cartoon/plane", "toy plane", 10),
        ("vehicles/farming/cartoon/tux_tractor", "toy tractor", 12),
        ("vehicles/cycle/pink_tricycle", "kids' tricycle", 25),
        ("vehicles/masstransit/cartoon/double_decker_bus", "toy bus", 10),
        ("vehicles/masstransit/cartoon/schoolbus", "toy school bus", 9),
        ("vehicles/emergency/cartoon/fire_engine", "toy fire engine", 12),
        ("vehicles/ship/walnutBoat", "toy sailboat", 6),
    )),
    "games-hobbies": ("toys", (
        ("symbols/chess/b_1_king", "chess king", 3), ("symbols/chess/b_2_queen", "chess queen", 3),
        ("symbols/chess/b_3_bishop", "chess bishop", 2), ("symbols/chess/b_4_knight", "chess knight", 2),
        ("symbols/chess/b_5_rook", "chess rook", 2), ("symbols/chess/b_6_pawn", "chess pawns", 2),
        ("symbols/chess/w_1_king", "chess king", 3), ("symbols/chess/w_2_queen", "chess queen", 3),
        ("symbols/chess/w_3_bishop", "chess bishop", 2), ("symbols/chess/w_4_knight", "chess knight", 2),
        ("symbols/chess/w_5_rook", "chess rook", 2), ("symbols/chess/w_6_pawn", "chess pawns", 2),
        ("seasonal/hanukkah/dreydl", "dreidel", 4), ("seasonal/hanukkah/dreydl-gimmel", "dreidel", 4),
        ("seasonal/hanukkah/dreydl-hay", "dreidel", 4), ("seasonal/hanukkah/dreydl-nun", "dreidel", 4),
        ("seasonal/hanukkah/dreydl-shin", "dreidel", 4), ("hobbies/kite", "kite", 12),
        ("seasonal/balloon", "balloons", 3), ("hobbies/knitting", "knitting wool and needles", 10),
        ("household/arttools/Pencil", "pencils", 2), ("household/arttools/pencil2", "coloured pencil", 2),
        ("household/arttools/ballpointpen", "pens", 2), ("household/arttools/biro", "biros", 2),
        ("household/arttools/highlighter", "highlighters", 3), ("household/arttools/painttube", "oil paint", 6),
        ("household/arttools/pen_dryerase", "whiteboard markers", 3),
        ("household/arttools/scissors_small_open", "craft scissors", 4),
        ("household/arttools/scissors_small_closed", "scissors", 4),
    )),
    "small-pets": ("pets", (
        ("animals/mammals/dogs/dog", "dog", 300), ("animals/mammals/cats/kitten", "kitten", 80),
        ("animals/mammals/rodents/mouse", "pet mouse", 8), ("animals/mammals/rodents/rat", "pet rat", 10),
        ("animals/mammals/rodents/rabbit", "rabbit", 30), ("animals/mammals/rodents/rabbit-2", "lop rabbit", 35),
        ("animals/mammals/rabbit_little", "baby rabbit", 25), ("animals/mammals/ferret", "ferret", 60),
        ("animals/mammals/hedgehog", "pygmy hedgehog", 80), ("animals/fish/butterflyfish", "butterflyfish", 25),
        ("animals/fish/clownfish", "clownfish", 15), ("animals/fish/moonwrasse", "moon wrasse", 20),
        ("animals/fish/stripedfish", "tropical fish", 10), ("animals/fish/seahorse", "seahorse", 30),
        ("animals/fish/lionfish", "lionfish", 45), ("animals/fish/shrimp", "aquarium shrimp", 3),
        ("animals/amphibians/frog", "pet frog", 20), ("animals/amphibians/frog-1", "tree frog", 25),
        ("animals/lizards/iguana", "iguana", 60),
    )),
    "birds": ("pets", (
        ("animals/birds/chicken_profile", "chicken", 12), ("animals/birds/hen", "laying hen", 15),
        ("animals/birds/rooster", "rooster", 10), ("animals/birds/duck", "duck", 15),
        ("animals/birds/drake", "drake", 15), ("animals/birds/gander", "goose", 25),
        ("animals/birds/turkey", "turkey", 40), ("animals/birds/guineafowl", "guinea fowl", 20),
        ("animals/birds/helmeted_guineafowl", "guinea fowl", 20), ("animals/birds/pigeon", "racing pigeon", 30),
        ("animals/birds/peacock", "peacock", 150), ("animals/birds/albino_peahen", "white peahen", 180),
        ("animals/birds/rainbow-lorikeet", "lorikeet", 200), ("animals/birds/adelaide-rosella", "rosella parrot", 120),
    )),
    "farm-animals": ("pets", (
        ("animals/mammals/bovines/cow", "cow", 900), ("animals/mammals/bovines/cow_white", "cow", 850),
        ("animals/mammals/bovines/bull", "bull", 1500), ("animals/mammals/bovines/goat", "goat", 150),
        ("animals/mammals/bovines/ram", "ram", 200), ("animals/mammals/bovines/sheep", "sheep", 180),
        ("animals/mammals/bovines/sheep_lamb", "lamb", 120), ("animals/mammals/pig", "pig", 250),
        ("animals/mammals/pig_golden", "Tamworth pig", 280), ("animals/mammals/pig_golden2", "Tamworth pig", 280),
        ("animals/mammals/equines/donkey", "donkey", 500), ("animals/mammals/equines/donkey_eating", "donkey", 500),
        ("animals/mammals/equines/horse", "horse", 2500),
    )),
}

#: Every stamp the photos style draws, in catalogue order.
CATALOGUE: tuple[Stamp, ...] = tuple(
    Stamp(path, name, float(price), fine, broad)
    for fine, (broad, entries) in _CATALOGUE.items() for path, name, price in entries
)
BROAD_CLASSES = tuple(sorted({stamp.broad for stamp in CATALOGUE}))
FINE_CLASSES = tuple(sorted(_CATALOGUE))
#: Pairs of classes whose items sellers mix up; planted label noise mostly moves an item along one.
_BROAD_CONFUSIONS = (
    ("clothing", "sports"), ("clothing", "toys"), ("electronics", "home-garden"), ("electronics", "music"),
    ("electronics", "toys"), ("home-garden", "food"), ("home-garden", "toys"), ("vehicles", "toys"),
    ("vehicles", "sports"), ("music", "toys"), ("music", "sports"), ("sports", "toys"), ("food", "pets"),
    ("pets", "toys"), ("pets", "home-garden"),
)
# Fine classes are also confused with their siblings (same broad class).
_FINE_CONFUSIONS = (
    ("soft-toys", "small-pets"), ("soft-toys", "birds"), ("toy-vehicles", "cars"),
    ("toy-vehicles", "trucks-machinery"), ("games-hobbies", "sports"), ("games-hobbies", "music"),
    ("appliances", "kitchen"), ("appliances", "household"), ("garden", "vegetables"), ("garden", "fruit"),
    ("accessories", "sports"), ("hats", "sports"), ("bikes-boats", "sports"), ("phones-cameras", "computers"),
    ("music", "phones-cameras"), ("farm-animals", "bakery-sweets"),
)


def _neighbours(pairs: tuple[tuple[str, str], ...]) -> dict[str, tuple[str, ...]]:
    """class -> sorted classes it is paired with, both ways."""
    linked: dict[str, set[str]] = {}
    for a, b in pairs:
        linked.setdefault(a, set()).add(b)
        linked.setdefault(b, set()).add(a)
    return {name: tuple(sorted(others)) for name, others in sorted(linked.items())}


BROAD_NEIGHBOURS = _neighbours(_BROAD_CONFUSIONS)
FINE_NEIGHBOURS = _neighbours(_FINE_CONFUSIONS + tuple(
    (a, b) for a in FINE_CLASSES for b in FINE_CLASSES if a < b and _CATALOGUE[a][0] == _CATALOGUE[b][0]
))

# --- Listing titles ---------------------------------------------------------------------------------------

# Per broad class (or fine class, which wins): brand-like words (producer words for food) and details.
_TITLE_VOCABULARY = {
    "clothing": (("Nordvik", "Maison Leroux", "Urbano", "Alba", "Fjordline", "Kestrel & Co"),
                 ("size S", "size M", "size L", "size XL", "EU 38", "EU 42", "one size", "kids age 8",
                  "worn twice", "from a smoke-free home")),
    "electronics": (("Voltra", "Kenmark", "Sonex", "Pixelon", "Hartwell", "Zentro"),
                    ("with charger", "in original box", "fully working", "tested and working", "with cables",
                     "2 years old", "A+ energy rating", "minor scratches")),
    "home-garden": (("Hagberg", "Casa Lina", "Greenfield", "Ironwood", "Porcel", "Hearth & Co"),
                    ("set of 4", "large", "small", "for indoor and outdoor", "in pot", "with case",
                     "barely used", "collection only")),
    "vehicles": (("Veloce", "Kraftmann", "Nordstar", "Ryder", "Baltic", "Corsa"),
                 ("2012, 148,000 km", "2018, 61,000 km", "MOT until May", "one owner", "new tyres",
                  "full service history", "spares or repairs", "low mileage")),
    "music": (("Marlow", "Stradella", "Bluenote", "Tamberg", "Harlan"),
              ("with case", "full size", "3/4 size", "new strings", "with stand", "great for beginners",
               "gig bag included")),
    "sports": (("Apex", "Sprintex", "Kinetik", "Fieldmaster", "Velo"),
               ("size 5", "official size", "adult", "junior", "with bag", "hardly used", "match quality")),
    "food": (("homegrown", "organic", "farm fresh", "allotment", "local"),
             ("1 kg", "per box", "5 kg bag", "freshly picked", "per bag", "collect today")),
    "bakery-sweets": (("Mill Lane", "home-made", "Bakehouse", "homemade"),  # a fine class: overrides "food"
                      ("baked today", "per dozen", "box of 6", "made to order", "collect today")),
    "toys": (("Tinker & Co", "Playwell", "Brixo", "Hoppla", "Wunderbox"),
             ("age 3+", "complete", "with box", "from a smoke-free home", "all parts included",
              "collector's item")),
    "pets": ((), ("3 months old", "vaccinated", "2 years old", "pair", "with cage", "very friendly",
                  "to a good home", "hand-reared", "from a small breeder")),
}
# Per broad class: how a seller who files an item there talks about it without naming it.
_CATEGORY_PHRASES = {
    "clothing": ("clothes bundle", "women's clothing", "men's clothing", "kids' clothes", "fashion accessory"),
    "electronics": ("electronics", "gadget", "tech bundle", "electrical item", "device, works"),
    "home-garden": ("home decor", "kitchen stuff", "household item", "garden bits", "DIY bits"),
    "vehicles": ("car part", "vehicle", "spare part", "for your car", "motor, runs well"),
    "music": ("music gear", "instrument", "band equipment", "for musicians", "studio gear"),
    "sports": ("sports equipment", "gym gear", "outdoor gear", "training kit", "fitness stuff"),
    "food": ("homemade food", "fresh produce", "treats", "snacks", "from the allotment"),
    "toys": ("toys", "kids' toy", "toy bundle", "game", "collectible"),
    "pets": ("pet", "animal", "pet supplies", "for your pet", "needs a new home"),
}
_ADJECTIVES = ("vintage", "lovely", "classic", "retro", "sturdy", "beautiful", "genuine", "compact",
               "quality", "cute", "large", "small", "nice")
_ADJECTIVES_BY_CLASS = {
    "pets": ("lovely", "friendly", "beautiful", "young", "tame", "cute", "healthy"),
    "food": ("fresh", "sweet", "ripe", "tasty", "homegrown", "juicy", "delicious"),
}
_CONDITIONS = ("like new", "barely used", "good condition", "used", "new", "brand new", "needs some love",
               "excellent condition", "some wear")
# Where "like new" would read oddly: what sellers say instead.
_CONDITIONS_BY_CLASS = {
    "pets": ("healthy", "well socialised", "lovely temperament", "ready now", "vet checked", "calm",
             "used to children"),
    "food": ("fresh", "this season's", "local", "ready to collect", "great value", "today only"),
    "vehicles": ("runs well", "good condition", "some rust", "drives perfectly", "needs work",
                 "clean inside and out", "well maintained", "like new"),
}
_DESCRIBING_TEMPLATES = (
    "{adjective} {item}, {condition}",
    "{item} - {detail}",
    "{brand} {item}, {detail}",
    "{condition}: {item} ({detail})",
    "{item} for sale",
    "{brand} {item} {detail}, {condition}",
    "{item}",
)
_GENERIC_TITLES = (
    "Must go", "Moving sale, everything cheap", "See photo", "Make me an offer", "Clearing out the garage",
    "Good price!!", "Pick up only", "As pictured", "Bargain", "Quick sale", "Everything must go this weekend",
    "Open to offers", "Spring cleaning", "Decluttering", "Read description", "Sold as seen", "Cheap",
    "Need gone asap", "Job lot", "Selling up, all offers considered",
)
_SUFFIXES = (" !!", " - cheap", " (pick up only)", " ono", " obo", " - quick sale")
_TITLE_KIND_WEIGHTS = {"describing": 0.75, "generic": 0.17, "none": 0.08}  # before misleading titles

# Colours of items whose stamp is "tintable" (drawn in white or grey for Tux Paint to colour).
_ITEM_COLOURS = (
    ("black", (38, 38, 42)), ("white", (240, 240, 236)), ("grey", (130, 130, 134)), ("navy", (32, 44, 92)),
    ("blue", (48, 92, 172)), ("red", (182, 36, 42)), ("burgundy", (112, 30, 46)), ("green", (42, 122, 62)),
    ("olive", (102, 106, 52)), ("yellow", (226, 190, 52)), ("orange", (230, 122, 42)), ("pink", (232, 142, 172)),
    ("beige", (202, 182, 150)), ("brown", (112, 72, 42)), ("purple", (112, 62, 142)), ("teal", (32, 122, 128)),
)
_COLOUR_RGB = dict(_ITEM_COLOURS)


def _finish_title(title: str, rng: np.random.Generator) -> str:
    """Casing and punctuation as sellers type them: mostly capitalised, some lower or upper case."""
    if rng.random() < 0.1:
        title += pick_one(rng, _SUFFIXES)
    style = rng.random()
    if style < 0.12:
        return title.lower()
    if style < 0.16:
        return title.upper()
    return title[0].upper() + title[1:]


def describing_title(stamp: Stamp, colour: str, rng: np.random.Generator) -> str:
    """A title that names the item, e.g. "Hagberg red mug, set of 4" or "Like new: cello (with case)"."""
    brands, details = _TITLE_VOCABULARY.get(stamp.fine) or _TITLE_VOCABULARY[stamp.broad]
    item = f"{colour} {stamp.name}" if colour else stamp.name
    template = pick_one(rng, _DESCRIBING_TEMPLATES)
    adjectives = _ADJECTIVES_BY_CLASS.get(stamp.broad, _ADJECTIVES)
    brand = pick_one(rng, brands) if brands else pick_one(rng, adjectives)
    conditions = _CONDITIONS_BY_CLASS.get(stamp.broad, _CONDITIONS)
    title = template.format(adjective=pick_one(rng, adjectives), item=item, condition=pick_one(rng, conditions),
                            detail=pick_one(rng, details), brand=brand)
    return _finish_title(title, rng)


def generic_title(rng: np.random.Generator) -> str:
    """A title that says nothing about the item."""
    return _finish_title(pick_one(rng, _GENERIC_TITLES), rng)


def misleading_title(given_label: str, stamps_by_class: dict[str, tuple[Stamp, ...]], broad_of: dict[str, str],
                     rng: np.random.Generator) -> str:
    """A title in the words of class `given_label`, as written by a seller who filed the item there:
    half the time the category's words ("Sports equipment, barely used"), else an item of that class."""
    if rng.random() < 0.5:
        broad = broad_of[given_label]
        phrase = pick_one(rng, _CATEGORY_PHRASES[broad])
        return _finish_title(f"{phrase}, {pick_one(rng, _CONDITIONS_BY_CLASS.get(broad, _CONDITIONS))}", rng)
    return describing_title(pick_one(rng, stamps_by_class[given_label]), "", rng)


def round_price(price: float) -> float:
    """A price as sellers set it: to 0.10 below 2, 0.50 below 10, whole euros below 100, fives below 1,000,
    else fifties."""
    for limit, step in ((2, 0.1), (10, 0.5), (100, 1.0), (1000, 5.0)):
        if price < limit:
            return round(max(step, round(price / step) * step), 2)
    return round(price / 50.0) * 50.0


# --- Source files: stamps and patterns --------------------------------------------------------------------

_STAMP_SIDE = 640  # stamps are kept at most this many pixels on their longer side
_SVG_SIDE = 560  # SVG stamps are rasterised to this many pixels on their longer side
# GIMP patterns (under /usr/share/gimp/2.0/patterns) by surface kind, with the factor they are enlarged by.
_GIMP_PATTERNS = {
    "wood": (("Wood/pine.pat", 3), ("Wood/wood1.pat", 3), ("Wood/wood2.pat", 3), ("Wood/wood3.pat", 4),
             ("Wood/wood4.pat", 4), ("Wood/wood5.pat", 3), ("Wood/walnut.pat", 3), ("Wood/parque1.pat", 3),
             ("Wood/parque2.pat", 3), ("Wood/parque3.pat", 3), ("Wood/corkboard.pat", 3)),
    "fabric": (("Fabric/burlap.pat", 2), ("Animal/leather.pat", 3)),
    "tiles": (("Stone/marble2.pat", 3), ("Stone/terra.pat", 3)),
    "stone": (("Stone/granite1.pat", 3), ("Stone/slate.pat", 3), ("Stone/marble1.pat", 3), ("Stone/marble3.pat", 3),
              ("Stone/pink_marble.pat", 3), ("Stone/cracked.pat", 2), ("Paper/crinklepaper.pat", 3)),
}
# How many textures of each kind are made with numpy, and how often each surface kind is drawn.
_PROCEDURAL_COUNT = {"wood": 6, "fabric": 6, "bedsheet": 10, "tiles": 6, "carpet": 8, "stone": 3}
SURFACE_WEIGHTS = {"plain": 0.32, "wood": 0.2, "fabric": 0.08, "bedsheet": 0.12, "tiles": 0.1, "carpet": 0.08,
                   "stone": 0.1}
SURFACES = tuple(SURFACE_WEIGHTS)


def read_gimp_pattern(path: Path) -> np.ndarray:
    """A GIMP .pat file as RGB uint8, shape (height, width, 3).

    The format: a big-endian header (header size, version, width, height, bytes per pixel), the magic
    "GPAT", the pattern's name, then width * height pixels of 1 (grey), 2 (grey, alpha), 3 or 4 bytes.
    """
    try:
        data = path.read_bytes()
    except OSError as error:
        raise DemoSourceError(f"cannot read {path}: {error}") from error
    if len(data) < 24 or data[20:24] != b"GPAT":
        raise DemoSourceError(f"{path} is not a GIMP pattern")
    header_size, _, width, height, depth = (int(v) for v in np.frombuffer(data[:20], dtype=">u4"))
    if depth not in (1, 2, 3, 4) or len(data) < header_size + width * height * depth:
        raise DemoSourceError(f"{path} is truncated or has {depth} bytes per pixel")
    pixels = np.frombuffer(data, dtype=np.uint8, count=width * height * depth, offset=header_size)
    pixels = pixels.reshape(height, width, depth)
    return np.repeat(pixels[..., :1], 3, axis=2) if depth <= 2 else np.ascontiguousarray(pixels[..., :3])


@dataclass(frozen=True)
class Cutout:
    """A stamp ready to draw: RGBA cropped to its visible pixels, and how it may be changed."""

    image: Image.Image
    tintable: bool  # drawn in white or grey, to be coloured
    mirror: bool  # may be flipped left to right (not when it shows writing)


@dataclass(frozen=True)
class PhotoSources:
    """Where the photos style reads its stamps and patterns."""

    stamps_dir: Path
    patterns_dir: Path

    def cutout(self, stamp_path: str) -> Cutout:
        return _load_cutout(self.stamps_dir, stamp_path)

    def tintable(self, stamp_path: str) -> bool:
        return "tintable" in _stamp_flags(_stamp_file(self.stamps_dir, stamp_path))

    def texture(self, index: int) -> Image.Image:
        return _texture(self.patterns_dir, index)

    def preload(self, stamp_paths: set[str], textures: set[int]) -> None:
        """Load these stamps (SVGs rasterised a few at a time) and make these textures, so that later
        renders, and processes forked after this, find them ready."""
        with ThreadPoolExecutor(max_workers=4) as pool:  # rsvg-convert runs outside the GIL
            list(pool.map(self.cutout, sorted(stamp_paths)))
        for index in sorted(textures):
            self.texture(index)


def _stamp_file(stamps_dir: Path, stamp_path: str) -> Optional[Path]:
    for extension in (".png", ".svg"):
        if (stamps_dir / f"{stamp_path}{extension}").is_file():
            return stamps_dir / f"{stamp_path}{extension}"
    return None


def load_sources(stamps_dir: Path = STAMPS_DIR, patterns_dir: Path = PATTERNS_DIR) -> PhotoSources:
    """Check that every catalogue stamp and GIMP pattern is there (and rsvg-convert for SVG stamps).

    Raises DemoSourceError naming what is missing and the Debian package that provides it.
    """
    missing = [stamp.path for stamp in CATALOGUE if _stamp_file(stamps_dir, stamp.path) is None]
    if missing:
        raise DemoSourceError(
            f"Tux Paint stamps not found in {stamps_dir}: missing {len(missing)} of {len(CATALOGUE)}, "
            f"e.g. {', '.join(missing[:3])}. Install them with `apt-get install tuxpaint-stamps-default`, "
            "or point --source DIR (source_dir) at a copy of /usr/share/tuxpaint/stamps."
        )
    patterns = [name for entries in _GIMP_PATTERNS.values() for name, _ in entries]
    absent = [name for name in patterns if not (patterns_dir / name).is_file()]
    if absent:
        raise DemoSourceError(
            f"GIMP patterns not found in {patterns_dir}: missing {', '.join(absent[:3])}. "
            "Install them with `apt-get install gimp-data`."
        )
    if shutil.which("rsvg-convert") is None:
        raise DemoSourceError("rsvg-convert is needed to draw the SVG stamps: `apt-get install librsvg2-bin`")
    return PhotoSources(stamps_dir, patterns_dir)


@functools.lru_cache(maxsize=None)
def _stamp_flags(stamp_file: Path) -> frozenset[str]:
    """The words of a stamp's .dat file (e.g. "tintable", "nomirror"); empty when it has none."""
    dat = stamp_file.with_suffix(".dat")
    return frozenset(dat.read_text(errors="replace").split()) if dat.is_file() else frozenset()


@functools.lru_cache(maxsize=None)
def _load_cutout(stamps_dir: Path, stamp_path: str) -> Cutout:
    stamp_file = _stamp_file(stamps_dir, stamp_path)
    if stamp_file is None:
        raise DemoSourceError(f"stamp {stamp_path} not found in {stamps_dir}")
    if stamp_file.suffix == ".svg":
        side = str(_SVG_SIDE)
        result = subprocess.run(["rsvg-convert", "-a", "-w", side, "-h", side, str(stamp_file)],
                                capture_output=True, check=False)
        if result.returncode != 0:
            raise DemoSourceError(f"rsvg-convert failed on {stamp_file}: {result.stderr.decode(errors='replace')}")
        image = Image.open(io.BytesIO(result.stdout))
    else:
        image = Image.open(stamp_file)
    image = image.convert("RGBA")
    box = image.getchannel("A").point(lambda a: 255 if a > 8 else 0).getbbox()
    if box is None:
        raise DemoSourceError(f"stamp {stamp_file} is empty")
    image = image.crop(box)
    if max(image.size) > _STAMP_SIDE:
        image.thumbnail((_STAMP_SIDE, _STAMP_SIDE), Image.Resampling.LANCZOS)
    flags = _stamp_flags(stamp_file)
    return Cutout(image, tintable="tintable" in flags, mirror="nomirror" not in flags)


# --- Surfaces ---------------------------------------------------------------------------------------------

_TEXTURE_SIDE = 1024
_TEXTURE_SEED = 20240611  # textures are the same in every build; photos differ in crops, tints and light


def _texture_entries() -> tuple[tuple[str, str, Any], ...]:
    """(kind, "gimp" or "numpy", pattern name and factor or variant number), in a fixed order."""
    entries = [(kind, "gimp", entry) for kind, patterns in _GIMP_PATTERNS.items() for entry in patterns]
    entries += [(kind, "numpy", i) for kind, count in _PROCEDURAL_COUNT.items() for i in range(count)]
    return tuple(entries)


TEXTURES = _texture_entries()


def texture_name(index: int) -> str:
    """A short name of texture `index`: the GIMP pattern's file name ("pine") or "numpy-3"."""
    _, origin, detail = TEXTURES[index]
    return Path(detail[0]).stem if origin == "gimp" else f"numpy-{detail}"

_TEXTURES_BY_KIND = {kind: tuple(i for i, entry in enumerate(TEXTURES) if entry[0] == kind) for kind in SURFACES}


def _smooth_noise(rng: np.random.Generator, size: tuple[int, int], cells: tuple[int, int]) -> np.ndarray:
    """Value noise in about [0, 1], float32 of shape (height, width): a random grid of `cells` (rows, columns)
    upsampled with bicubic interpolation."""
    grid = rng.random(cells, dtype=np.float32)
    return np.asarray(Image.fromarray(grid).resize((size[1], size[0]), Image.Resampling.BICUBIC))


def _colourise(tone: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    """uint8 RGB of `colour` scaled by `tone` (float, shape (H, W), about 1)."""
    return np.clip(tone[..., None] * np.asarray(colour, dtype=np.float32), 0, 255).astype(np.uint8)


_WOOD_TONES = ((198, 160, 112), (150, 100, 62), (112, 72, 45), (214, 182, 134), (160, 150, 138), (128, 80, 52))
_FABRIC_TONES = ((70, 80, 110), (150, 40, 48), (60, 100, 70), (190, 180, 160), (90, 90, 95), (200, 150, 60))
_SHEET_TONES = ((244, 244, 240), (214, 226, 240), (240, 214, 220), (214, 236, 222), (226, 226, 230),
                (244, 234, 210), (226, 216, 240))
_TILE_TONES = ((236, 234, 228), (222, 208, 184), (178, 92, 62), (160, 162, 166), (150, 170, 186), (172, 190, 160))
_CARPET_TONES = ((128, 126, 122), (186, 170, 142), (110, 80, 60), (44, 56, 96), (52, 84, 60), (120, 40, 52),
                 (66, 66, 70), (200, 196, 188))


def _numpy_texture(kind: str, rng: np.random.Generator) -> np.ndarray:
    """A texture of `kind` made from noise and stripes, uint8 RGB of _TEXTURE_SIDE square."""
    side = _TEXTURE_SIDE
    y = np.arange(side, dtype=np.float32)[:, None]
    x = np.arange(side, dtype=np.float32)[None, :]
    if kind == "wood":  # boards running left to right, with rings, streaks and seams
        board = int(rng.integers(110, 240))
        warp = _smooth_noise(rng, (side, side), (6, 3)) * 60
        period = float(rng.uniform(9, 22))
        rings = np.sin(2 * np.pi * (y + warp) / period)
        streaks = _smooth_noise(rng, (side, side), (side // 3, 6))
        offsets = rng.normal(0, 0.07, side // board + 2).astype(np.float32)
        tone = 1 + 0.07 * rings + 0.18 * (streaks - 0.5) + offsets[(np.arange(side) // board)][:, None]
        tone = np.where((np.arange(side) % board < 2)[:, None], tone * 0.55, tone)
        return _colourise(tone, pick_one(rng, _WOOD_TONES))
    if kind == "fabric":  # a plain weave of threads, sometimes in a two-colour check
        thread = int(rng.integers(3, 7))
        over = ((x // thread + y // thread) % 2).astype(np.float32)
        shading = over * np.sin(np.pi * (x % thread) / thread) + (1 - over) * np.sin(np.pi * (y % thread) / thread)
        tone = 0.82 + 0.16 * shading + 0.1 * (_smooth_noise(rng, (side, side), (24, 24)) - 0.5)
        image = _colourise(tone, pick_one(rng, _FABRIC_TONES)).astype(np.float32)
        if rng.random() < 0.4:
            band = int(rng.integers(40, 120))
            check = (((x // band) + (y // band)) % 2 == 0)[..., None]
            image = np.where(check, image * np.array([0.8, 0.85, 0.95], np.float32), image)
        return np.clip(image, 0, 255).astype(np.uint8)
    if kind == "bedsheet":  # pale cotton with soft folds, plain, striped, checked or dotted
        folds = _smooth_noise(rng, (side, side), (5, 5))
        gy, gx = np.gradient(folds)
        angle = rng.uniform(0, 2 * np.pi)
        tone = 1 + 90 * (np.cos(angle) * gx + np.sin(angle) * gy) + 0.05 * (folds - 0.5)
        colour = np.asarray(pick_one(rng, _SHEET_TONES), dtype=np.float32)
        pattern = rng.integers(4)
        base = np.broadcast_to(colour, (side, side, 3)).copy()
        accent = colour * np.array(rng.uniform(0.7, 0.95, 3), dtype=np.float32)
        if pattern == 1:
            period = int(rng.integers(24, 70))
            base[(np.arange(side) % period < period // 3)] = accent
        elif pattern == 2:
            period = int(rng.integers(30, 80))
            stripes = ((x % period) < period // 2) ^ ((y % period) < period // 2)
            base[stripes] = accent
        elif pattern == 3:
            period = int(rng.integers(28, 60))
            dots = ((x % period - period / 2) ** 2 + (y % period - period / 2) ** 2) < (period / 7) ** 2
            base[dots] = accent
        return np.clip(base * tone[..., None], 0, 255).astype(np.uint8)
    if kind == "tiles":  # square tiles of slightly varying shade with grout lines
        tile = int(rng.integers(90, 230))
        grout = int(rng.integers(3, 8))
        count = side // tile + 2
        shade = rng.normal(1, 0.04, (count, count)).astype(np.float32)
        tone = shade[np.arange(side) // tile][:, np.arange(side) // tile]
        tone = tone + 0.06 * (_smooth_noise(rng, (side, side), (40, 40)) - 0.5)
        image = _colourise(tone, pick_one(rng, _TILE_TONES))
        lines = ((np.arange(side) % tile) < grout)
        grout_colour = np.array(rng.choice([(200, 200, 196), (120, 118, 114), (232, 230, 226)]), dtype=np.uint8)
        image[lines, :] = grout_colour
        image[:, lines] = grout_colour
        return image
    if kind == "carpet":  # short pile: fine speckle over a blotchy base
        speckle = Image.fromarray((rng.random((side, side)) * 255).astype(np.uint8), mode="L")
        speckle = np.asarray(speckle.filter(ImageFilter.GaussianBlur(1.0)), dtype=np.float32) / 255
        tone = 0.75 + 0.5 * (speckle - 0.5) * 2.2 + 0.12 * (_smooth_noise(rng, (side, side), (16, 16)) - 0.5)
        return _colourise(tone, pick_one(rng, _CARPET_TONES))
    # stone: several octaves of noise, grey or sandy
    tone = sum(0.5 ** octave * (_smooth_noise(rng, (side, side), (8 * 4 ** octave,) * 2) - 0.5)
               for octave in range(3))
    return _colourise(0.9 + 0.35 * tone, pick_one(rng, ((150, 148, 144), (190, 176, 150), (110, 108, 104))))


def _tile_pattern(pattern: np.ndarray, factor: int, rng: np.random.Generator) -> np.ndarray:
    """A GIMP pattern enlarged by `factor`, repeated to _TEXTURE_SIDE square, with gentle uneven shading
    so that the repeats show less."""
    image = Image.fromarray(pattern).resize((pattern.shape[1] * factor, pattern.shape[0] * factor),
                                            Image.Resampling.BICUBIC)
    tile = np.asarray(image)
    reps = (-(-_TEXTURE_SIDE // tile.shape[0]), -(-_TEXTURE_SIDE // tile.shape[1]), 1)
    tiled = np.tile(tile, reps)[:_TEXTURE_SIDE, :_TEXTURE_SIDE].astype(np.float32)
    shading = 1 + 0.12 * (_smooth_noise(rng, (_TEXTURE_SIDE, _TEXTURE_SIDE), (5, 5)) - 0.5)
    return np.clip(tiled * shading[..., None], 0, 255).astype(np.uint8)


@functools.lru_cache(maxsize=None)
def _texture(patterns_dir: Path, index: int) -> Image.Image:
    """Texture number `index` of TEXTURES, RGB of _TEXTURE_SIDE square; made once per process."""
    kind, origin, detail = TEXTURES[index]
    rng = np.random.default_rng([_TEXTURE_SEED, index])
    if origin == "gimp":
        name, factor = detail
        return Image.fromarray(_tile_pattern(read_gimp_pattern(patterns_dir / name), factor, rng))
    return Image.fromarray(_numpy_texture(kind, rng))


_PLAIN_TONES = ((242, 242, 238), (232, 230, 224), (214, 214, 212), (236, 226, 208), (246, 240, 226),
                (204, 214, 222), (92, 92, 96), (52, 52, 56), (196, 182, 160), (224, 232, 226))


def _surface(sources: PhotoSources, texture_index: int, size: tuple[int, int], rng: np.random.Generator) -> Image.Image:
    """The background of a photo of `size` (width, height): a plain colour with a soft gradient (index -1),
    or a crop of texture number `texture_index` of TEXTURES, turned, mirrored and maybe enlarged."""
    width, height = size
    if texture_index < 0:  # plain; smooth, so drawn small and enlarged
        colour = np.asarray(pick_one(rng, _PLAIN_TONES), dtype=np.float32) * rng.uniform(0.94, 1.04, 3)
        ramp = np.linspace(1 + rng.uniform(0, 0.1), 1 - rng.uniform(0, 0.12), 16, dtype=np.float32)
        small = Image.fromarray(_colourise(np.repeat(ramp[:, None], 16, axis=1), tuple(colour)))
        return small.resize(size, Image.Resampling.BILINEAR)
    texture = sources.texture(texture_index)
    zoom = rng.uniform(0.55, 1.05) if rng.random() < 0.3 else 1.0  # enlarging costs a resize: only some
    turn = rng.random() < 0.5  # boards and stripes run either way
    crop_w = min(_TEXTURE_SIDE, max(64, round((height if turn else width) * zoom)))
    crop_h = min(_TEXTURE_SIDE, max(64, round((width if turn else height) * zoom)))
    top = int(rng.integers(0, _TEXTURE_SIDE - crop_h + 1))
    left = int(rng.integers(0, _TEXTURE_SIDE - crop_w + 1))
    crop = texture.crop((left, top, left + crop_w, top + crop_h))
    if rng.random() < 0.5:
        crop = crop.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if turn:
        crop = crop.transpose(Image.Transpose.ROTATE_90)
    return crop if crop.size == size else crop.resize(size, Image.Resampling.BILINEAR)


# --- Drawing a photo --------------------------------------------------------------------------------------

_NOISE_SEED = 7
_MAX_ENLARGE = 6.0  # a stamp is drawn at most this many times its own size
_GRAIN_LEVELS = (1.0, 2.0, 3.0, 4.5)  # standard deviations of sensor grain, in 0..255 steps


@functools.lru_cache(maxsize=None)
def _sensor_noise(level: int) -> Image.Image:
    """Gaussian grain of _GRAIN_LEVELS[level] around 128, independent per channel, RGB of MAX_SIDE square;
    cropped per photo and added with offset -128."""
    noise = np.random.default_rng([_NOISE_SEED, level]).standard_normal((MAX_SIDE, MAX_SIDE, 3), dtype=np.float32)
    return Image.fromarray(np.clip(128 + _GRAIN_LEVELS[level] * noise, 0, 255).astype(np.uint8))


_LUMA = np.array([0.299, 0.587, 0.114])


def _colour_matrix(tint: str, rng: np.random.Generator) -> tuple[float, ...]:
    """The 12-number RGB matrix (with offsets) that Pillow's convert applies: tint to colour `tint` (a name
    of _ITEM_COLOURS; "" keeps the colours), then a small hue turn, saturation and brightness change."""
    if tint:  # luminance mapped onto the colour: white parts take the colour, dark lines stay dark
        colour = np.asarray(_COLOUR_RGB[tint], dtype=float) / 255
        matrix = np.outer(colour * 0.86, _LUMA)
        offset = colour * 0.22 * 255
    else:
        matrix, offset = np.eye(3), np.zeros(3)
    angle = np.deg2rad(rng.uniform(-8, 8))  # hue turn about the grey axis (Rodrigues' rotation)
    axis = np.ones(3) / np.sqrt(3)
    cross = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    turn = np.cos(angle) * np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * np.outer(axis, axis)
    saturation = rng.uniform(0.8, 1.2)  # towards or away from the pixel's grey
    saturate = saturation * np.eye(3) + (1 - saturation) * np.outer(np.ones(3), _LUMA)
    adjust = rng.uniform(0.88, 1.08) * saturate @ turn
    matrix, offset = adjust @ matrix, adjust @ offset
    return tuple(float(v) for row, extra in zip(matrix, offset) for v in (*row, extra))


def _restyle(image: Image.Image, tint: str, rng: np.random.Generator) -> Image.Image:
    """An RGBA stamp recoloured for one photo (see _colour_matrix); one pass of Pillow's convert."""
    out = image.convert("RGB").convert("RGB", _colour_matrix(tint, rng))
    out.putalpha(image.getchannel("A"))
    return out


def _posed(cutout: Cutout, colour: str, longest: int, rng: np.random.Generator, *, rotate: float) -> Image.Image:
    """The stamp recoloured (`colour` for tintable stamps), scaled to `longest` pixels on its longer side,
    maybe mirrored, rotated by up to `rotate` degrees. RGBA; resampled premultiplied so edges stay clean,
    and at the smaller of the stamp's and the photo's sizes, which is faster."""
    image = cutout.image
    scale = longest / max(image.size)
    mirror = cutout.mirror and rng.random() < 0.5
    angle = float(np.clip(rng.normal(0, rotate / 2.5), -rotate, rotate))
    if scale < 1:
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.convert("RGBa").resize(size, Image.Resampling.BICUBIC).convert("RGBA")
    image = _restyle(image, colour if cutout.tintable else "", rng).convert("RGBa")
    if mirror:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if abs(angle) > 0.5:
        image = image.rotate(angle, resample=Image.Resampling.BILINEAR, expand=True)
    if scale > 1:  # enlarging: bilinear is as good here and twice as fast as bicubic
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        image = image.resize(size, Image.Resampling.BILINEAR)
    return image.convert("RGBA")


def _drop_shadow(canvas: Image.Image, item: Image.Image, position: tuple[int, int], *, offset: tuple[int, int],
                 softness: float, opacity: float) -> None:
    """Darken `canvas` under and beside `item` (placed at `position`) with a blurred copy of its outline."""
    scale = 4  # blur at a quarter of the size: the same look, much faster
    alpha = item.getchannel("A")
    small = alpha.resize((max(1, alpha.width // scale), max(1, alpha.height // scale)), Image.Resampling.BILINEAR)
    pad = max(2, round(softness / scale * 2))
    padded = Image.new("L", (small.width + 2 * pad, small.height + 2 * pad))
    padded.paste(small, (pad, pad))
    padded = padded.filter(ImageFilter.GaussianBlur(max(0.5, softness / scale)))
    mask = padded.resize((padded.width * scale, padded.height * scale), Image.Resampling.BILINEAR)
    mask = mask.point(lambda value: int(value * opacity))
    corner = (position[0] - pad * scale + offset[0], position[1] - pad * scale + offset[1])
    canvas.paste((12, 10, 8), corner, mask)


def _place(size: tuple[int, int], item_size: tuple[int, int], rng: np.random.Generator) -> tuple[int, int]:
    """Top-left corner for an item in a photo: anywhere it fits, more often near the middle."""
    left_room, top_room = max(0, size[0] - item_size[0]), max(0, size[1] - item_size[1])
    u, v = rng.random(2) * 0.5 + rng.random(2) * 0.5  # sum of two uniforms: peaks in the middle
    return int(u * left_room), int(v * top_room)


def render_listing_photo(sources: PhotoSources, row: Any) -> Image.Image:
    """Draw one planned listing photo (a row of `ListingPhotosStyle.plan_items`): surface, maybe a second
    item in a corner, the item with its shadow, then light, white balance, grain and focus. RGB."""
    rng = np.random.default_rng(row.render_seed)
    size = (int(row.width), int(row.height))
    canvas = _surface(sources, row.texture, size, rng)
    light = rng.uniform(0, 2 * np.pi)  # shadows fall away from the light
    shadow_dir = np.array([np.cos(light), np.sin(light)])

    cutout = sources.cutout(row.item)
    # The item spans 45-88% of the photo in the direction it is tightest in, unless that would enlarge
    # a small stamp more than _MAX_ENLARGE times.
    stamp_w, stamp_h = cutout.image.size
    fill = min(size[0] / stamp_w, size[1] / stamp_h) * rng.uniform(0.45, 0.88)
    longest = int(max(stamp_w, stamp_h) * min(fill, _MAX_ENLARGE))
    item = _posed(cutout, row.colour, longest, rng, rotate=22.0)
    fit = min(1.0, 0.94 * size[0] / item.width, 0.94 * size[1] / item.height)
    if fit < 1.0:
        fitted = (max(1, int(item.width * fit)), max(1, int(item.height * fit)))
        item = item.convert("RGBa").resize(fitted, Image.Resampling.BICUBIC).convert("RGBA")
    position = _place(size, item.size, rng)

    if row.second_item:
        second = _posed(sources.cutout(row.second_item), "", int(longest * rng.uniform(0.3, 0.5)), rng, rotate=30.0)
        corner = int(rng.integers(4))
        x = size[0] - second.width * rng.uniform(0.6, 1.0) if corner % 2 else -second.width * rng.uniform(0.0, 0.4)
        y = size[1] - second.height * rng.uniform(0.6, 1.0) if corner // 2 else -second.height * rng.uniform(0.0, 0.4)
        defocus = ImageFilter.GaussianBlur(rng.uniform(0.5, 1.8))  # out of focus, behind the item
        second = second.convert("RGBa").filter(defocus).convert("RGBA")
        spot = (int(x), int(y))
        _drop_shadow(canvas, second, spot, offset=tuple((shadow_dir * second.width * 0.04).astype(int)),
                     softness=second.width * 0.05, opacity=0.35)
        canvas.paste(second, spot, second)

    reach = max(item.size) * rng.uniform(0.015, 0.06)
    _drop_shadow(canvas, item, position, offset=tuple((shadow_dir * reach).astype(int)),
                 softness=max(item.size) * rng.uniform(0.02, 0.06), opacity=rng.uniform(0.3, 0.6))
    canvas.paste(item, position, item)
    return _light(canvas, rng)


def _light(canvas: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Exposure and white balance, a light fall-off across the frame, vignette, sensor grain, maybe soft
    focus. Done with Pillow's lookup tables and blends, which are much faster than float arrays."""
    width, height = canvas.size
    exposure = rng.uniform(0.82, 1.12)
    balance = 1 + rng.normal(0, 0.05, 3)  # white balance: warm, cool or green casts
    shaded = rng.random() < 0.6
    if shaded:  # light falling off across the frame, and a vignette
        ys = np.linspace(-1, 1, max(2, height // 16), dtype=np.float32)[:, None]
        xs = np.linspace(-1, 1, max(2, width // 16), dtype=np.float32)[None, :]
        angle = rng.uniform(0, 2 * np.pi)
        shade = (1 + rng.uniform(0.05, 0.25) * (np.cos(angle) * xs + np.sin(angle) * ys))
        shade = shade * (1 - rng.uniform(0, 0.3) * (xs * xs + ys * ys) / 2)
        exposure *= float(shade.max())
    lut = np.minimum(255, np.outer(exposure * balance, np.arange(256)) + 0.5).astype(int).ravel().tolist()
    photo = canvas.point(lut)
    if shaded:
        mask = Image.fromarray(np.round(shade / shade.max() * 255).astype(np.uint8))
        mask = mask.resize(canvas.size, Image.Resampling.BILINEAR)
        photo = Image.composite(photo, Image.new("RGB", canvas.size), mask)  # photo * mask / 255
    level = int(rng.integers(len(_GRAIN_LEVELS)))
    top, left = int(rng.integers(0, MAX_SIDE - height + 1)), int(rng.integers(0, MAX_SIDE - width + 1))
    grain = _sensor_noise(level).crop((left, top, left + width, top + height))
    photo = ImageChops.add(photo, grain, scale=1.0, offset=-128)
    if rng.random() < 0.12:  # out of focus: halved and enlarged again, cheaper than a blur filter
        photo = photo.reduce(2).resize(photo.size, Image.Resampling.BILINEAR)
    return photo


# --- Planning ---------------------------------------------------------------------------------------------


def _photo_size(rng: np.random.Generator) -> tuple[int, int]:
    """(width, height) of a phone photo: landscape, portrait or square, sides in MIN_SIDE..MAX_SIDE."""
    ratio = pick_one(rng, (4 / 3, 4 / 3, 3 / 4, 3 / 4, 1.0, 16 / 9, 9 / 16))
    long_ratio = max(ratio, 1 / ratio)
    longest = int(rng.integers(max(MIN_SIDE, int(np.ceil(MIN_SIDE * long_ratio))), MAX_SIDE + 1))
    shortest = max(MIN_SIDE, round(longest / long_ratio))
    return (longest, shortest) if ratio >= 1 else (shortest, longest)


class ListingPhotosStyle(DemoStyle):
    """Tux Paint stamps photographed on varied surfaces, 320-900 px, with titles and prices per item."""

    name = "photos"
    parallel = True
    random_flip_share = RANDOM_FLIP_SHARE
    default_noise_rate = DEFAULT_NOISE_RATE
    default_source = STAMPS_DIR
    source_label = "Tux Paint stamps"
    extra_truth_columns = ("item", "title_kind", "surface", "second_item")

    def __init__(self, *, classes: str = "broad"):
        levels = {"broad": (BROAD_CLASSES, BROAD_NEIGHBOURS), "fine": (FINE_CLASSES, FINE_NEIGHBOURS)}
        if classes not in levels:
            raise ValueError(f"unknown classes {classes!r}; choose one of {', '.join(levels)}")
        self.level = classes
        self.classes, self.neighbours = levels[classes]
        self.default_per_class = round(DEFAULT_PHOTOS / len(self.classes))
        self.stamps_by_class = {name: tuple(s for s in CATALOGUE if self._class_of(s) == name) for name in self.classes}
        self.broad_of = {self._class_of(s): s.broad for s in CATALOGUE}
        self._stamps = {s.path: s for s in CATALOGUE}

    def _class_of(self, stamp: Stamp) -> str:
        return stamp.broad if self.level == "broad" else stamp.fine

    def load(self, source_dir: Path) -> PhotoSources:
        return load_sources(source_dir, PATTERNS_DIR)

    def plan_items(self, source, *, per_class: int, extra: int, rng: np.random.Generator) -> pd.DataFrame:
        labels = list(np.repeat(np.arange(len(self.classes)), per_class)) + list(
            rng.integers(0, len(self.classes), size=extra))
        stamps: list[Stamp] = []
        for k, name in enumerate(self.classes):  # every stamp of a class about equally often
            pool = self.stamps_by_class[name]
            stamps += [pool[i] for i in rng.permutation(np.resize(rng.permutation(len(pool)), per_class))]
        stamps += [pick_one(rng, self.stamps_by_class[self.classes[k]]) for k in labels[len(stamps):]]
        rows = [self._plan_photo(stamp, source, rng) for stamp in stamps]
        medians = np.array([stamp.price for stamp in stamps], dtype=float)
        prices = np.array([round_price(p) for p in draw_prices(medians, rng, sigma=PRICE_SIGMA)])
        frame = pd.DataFrame(rows)
        frame["true_label"] = frame["given_label"] = [self._class_of(stamp) for stamp in stamps]
        frame["true_price"] = frame["price"] = prices
        frame["price_median"] = medians
        frame["is_price_typo"] = False
        frame["seller_id"] = draw_sellers(len(stamps), rng)
        return frame

    def _plan_photo(self, stamp: Stamp, source: PhotoSources, rng: np.random.Generator) -> dict:
        """Everything about one photo but its labels and price: size, surface, colour, second item, title."""
        width, height = _photo_size(rng)
        surface = SURFACES[int(rng.choice(len(SURFACES), p=list(SURFACE_WEIGHTS.values())))]
        texture = pick_one(rng, _TEXTURES_BY_KIND[surface]) if surface != "plain" else -1
        colour = pick_one(rng, _ITEM_COLOURS)[0] if source.tintable(stamp.path) else ""
        second = ""
        if rng.random() < SECOND_ITEM_SHARE:
            others = tuple(s for s in CATALOGUE if s.broad != stamp.broad)
            second = pick_one(rng, others).path
        kinds = tuple(_TITLE_KIND_WEIGHTS)
        kind = kinds[int(rng.choice(len(kinds), p=list(_TITLE_KIND_WEIGHTS.values())))]
        title = {"describing": lambda: describing_title(stamp, colour, rng), "generic": lambda: generic_title(rng),
                 "none": lambda: ""}[kind]()
        return {"item": stamp.path, "colour": colour, "width": width, "height": height,
                "surface": surface if texture < 0 else f"{surface}/{texture_name(texture)}", "texture": texture,
                "second_item": second, "title": title, "title_kind": kind,
                "quality": int(rng.integers(82, 96)), "render_seed": int(rng.integers(2 ** 63))}

    def after_label_noise(self, photos: pd.DataFrame, rng: np.random.Generator) -> None:
        """Give MISLEADING_TITLE_SHARE of mislabelled listings a title in the words of their given class."""
        moved = np.flatnonzero((photos["given_label"] != photos["true_label"]).to_numpy())
        chosen = moved[rng.random(len(moved)) < MISLEADING_TITLE_SHARE]
        photos.loc[chosen, "title"] = [
            misleading_title(label, self.stamps_by_class, self.broad_of, rng)
            for label in photos.loc[chosen, "given_label"]
        ]
        photos.loc[chosen, "title_kind"] = "misleading"

    def prepare(self, source: PhotoSources, rows: pd.DataFrame) -> None:
        """Load the stamps and make the textures the planned photos use, before rendering them."""
        stamps = set(rows["item"]) | set(rows["second_item"]) - {""}
        source.preload(stamps, set(rows["texture"]) - {-1})

    def render(self, source, row) -> Image.Image:
        return render_listing_photo(source, row)

    def quality(self, row) -> int:
        return int(row.quality)


def pencil_sketch(photo: Image.Image) -> Image.Image:
    """A listing photo redrawn as a pencil sketch on paper (grey, RGB): the colour dodge of the grey image
    by its blurred negative keeps outlines and a little shading and drops colour and texture, a picture
    style whose ImageNet features are much weaker than a photo's."""
    grey = np.asarray(photo.convert("L"), dtype=np.float32)
    blurred = np.asarray(ImageOps.invert(photo.convert("L")).filter(ImageFilter.GaussianBlur(6)), dtype=np.float32)
    dodged = np.clip(grey * 255.0 / np.maximum(255.0 - blurred, 1.0), 0, 255)
    paper = Image.fromarray(dodged.astype(np.uint8)).filter(ImageFilter.SMOOTH)
    return paper.convert("RGB")


class SketchesStyle(ListingPhotosStyle):
    """The photos style's listings drawn as pencil sketches: same items, titles and prices, another visual
    domain (drawings) where a network trained on ImageNet photos sees far less."""

    name = "sketches"
    source_label = "Tux Paint stamps, sketched"

    def render(self, source, row) -> Image.Image:
        return pencil_sketch(render_listing_photo(source, row))
