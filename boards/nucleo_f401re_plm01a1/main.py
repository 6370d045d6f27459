import board
from meter.firmware import run

run(board.Board())
