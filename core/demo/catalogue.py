"""The items of the photos demo style: Tux Paint stamps sorted into broad and fine classes, and which classes a
seller confuses.
"""
from __future__ import annotations

from dataclasses import dataclass


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
